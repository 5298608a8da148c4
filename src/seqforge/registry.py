"""Where versions registered before the registries layout (seqforge ≤ d00ba9a) find their pyfunc class: their
pickles name `seqforge.registry.Seq2SeqModel`. A process that has imported this seqforge loads them with it."""

from seqforge.tracking.pyfunc import Seq2SeqModel

__all__ = ["Seq2SeqModel"]
