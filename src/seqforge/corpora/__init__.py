"""Corpus formats: one module per format behind one registry (`corpora.registry`), and fetching the built-in
corpora. Importing the package registers the built-in formats."""

from seqforge.core.plugins import import_all

import_all(__name__, __path__)  # every module registers what it defines
