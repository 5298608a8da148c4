"""Model families behind one interface (`models.base.Seq2Seq`) and one registry (`models.registry`).

Importing the package registers the built-in families; a new one registers itself the same way.
"""

from seqforge.models import rnn, transformer  # noqa: F401  (built-in families register on import)
