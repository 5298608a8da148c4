"""Data path: raw corpus files -> (source, target) pairs -> subword token ids -> batches."""

import datasets

datasets.disable_progress_bars()
