"""Model families behind one interface (`models.base.Seq2Seq`) and one registry (`models.registry`).

Importing the package registers the built-in families; a new one registers itself the same way.
"""

from seqforge.core.plugins import import_all

import_all(__name__, __path__)  # every module registers what it defines
