"""Corpus formats: one module per format behind one registry (`corpora.registry`), and fetching the built-in
corpora. Importing the package registers the built-in formats."""

from seqforge.corpora import dailydialog, delimited, hf, jsonl, multi30k, parquet, text_pair  # noqa: F401  (register on import)
