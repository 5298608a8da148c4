"""Data path: raw corpus files -> (source, target) pairs -> subword token ids -> batches."""

import os

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # read when `datasets` is imported, wherever that is
