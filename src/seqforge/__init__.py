"""seqforge: seq2seq-with-attention and Transformer training pipeline (DVC + Ray Train + MLflow)."""

from seqforge.core.moved import install

install()  # old module paths that registered versions' pickles name (`seqforge.core.moved`)

__version__ = "0.1.0"
