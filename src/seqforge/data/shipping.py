"""Tokenized data for Ray Train workers on any node, with no shared filesystem.

The driver (the train stage, a sweep) reads a task's tokenized splits from `artifacts/tokenized/`
once and puts their Arrow tables in Ray's object store; every worker, Tune trial and export step
reads them from there (`splits`). Ray moves the objects between nodes, and a node's workers share one
copy in its shared memory. The tokenizer travels as its JSON text in the loop config.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
from datasets import Dataset, load_from_disk
from datasets.table import InMemoryTable

TRAINING_SPLITS = ("train", "validation")


def ship(tokenized_dir: Path, split_names: tuple[str, ...] = TRAINING_SPLITS):
    """Put the `split_names` of a tokenized task (`paths.tokenized_dir`) in Ray's object store (Ray must be
    initialised); returns the object reference the loop config carries."""
    import ray

    tokenized = load_from_disk(str(tokenized_dir))
    tables: dict[str, pa.Table] = {name: tokenized[name].data.table for name in split_names}
    return ray.put(tables)


def splits(ref) -> Mapping[str, Dataset]:
    """The splits `ship` put in the object store, as in-memory `datasets.Dataset`s."""
    import ray

    return {name: Dataset(InMemoryTable(table)) for name, table in ray.get(ref).items()}
