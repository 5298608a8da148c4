"""seqforge: seq2seq-with-attention and Transformer training pipeline (DVC + Ray Train + MLflow)."""

__version__ = "0.1.0"
