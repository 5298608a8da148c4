"""Data path: a corpus's rows (read by its format) -> held-out splits of (source, target) pairs -> subword token
ids -> batches."""

import os

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # read when `datasets` is imported, wherever that is
