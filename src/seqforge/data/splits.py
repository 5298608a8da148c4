"""Held-out splits as boolean masks over memory-mapped rows, each split streamed batch by batch into its own file."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict

from seqforge.corpora.base import ALL, SPLITS, CorpusError

BATCH = 50_000


def _carve(column: pa.ChunkedArray, sizes: dict[str, int], seed: int, where: str) -> dict[str, np.ndarray]:
    if isinstance(column.type, pa.ListType | pa.LargeListType):  # dialogues: key on the whole turn list
        column = pc.binary_join(column, "\x1f")
    unique = pc.unique(column)
    wanted = sum(sizes.values())
    if wanted >= len(unique):
        raise CorpusError(
            f"{where}: split: {' + '.join(f'{s}={n}' for s, n in sizes.items())} = {wanted} "
            f"held-out items, but the corpus has only {len(unique)} distinct ones (train would be empty)"
        )
    order = np.random.default_rng(seed).permutation(len(unique))
    masks, start, held = {}, 0, np.zeros(len(column), dtype=bool)
    for split, n in sizes.items():
        chosen = unique.take(pa.array(order[start : start + n]))
        masks[split] = pc.is_in(column, value_set=chosen).to_numpy(zero_copy_only=False)
        held |= masks[split]
        start += n
    return {"train": ~held, **masks}


def split_masks(rows: pa.Table, key: str, sizes: dict[str, int], seed: int, where: str) -> dict[str, np.ndarray]:
    """Boolean row masks of train, validation and test: the corpus's own splits, or held-out sets of
    `sizes[split]` distinct `key` values each carved from a corpus that comes in one piece (rows
    sharing a key, the same source sentence or the same dialogue, always land in one split)."""
    split_of = rows.column("split")
    if pc.unique(split_of).to_pylist() != [ALL]:
        return {s: pc.equal(split_of, s).to_numpy(zero_copy_only=False) for s in SPLITS}
    if not sizes:
        raise CorpusError(
            f"{where}: the corpus comes in one piece: give held-out sizes "
            "(`seqforge corpus add ... --split validation=N,test=N`)"
        )
    return _carve(rows.column(key), sizes, seed, where)


def write_splits(rows: pa.Table, masks: dict[str, np.ndarray], columns: list[str], scratch: Path) -> DatasetDict:
    """The `columns` of the rows under each split's mask, streamed into one Arrow file per split."""
    table = rows.select(columns)
    files = {split: scratch / f"split-{split}.arrow" for split in masks}
    with ExitStack() as stack:
        writers = {
            split: stack.enter_context(pa.ipc.new_stream(str(path), table.schema)) for split, path in files.items()
        }
        offset = 0
        for batch in table.to_batches(max_chunksize=BATCH):
            for split, mask in masks.items():
                writers[split].write_batch(batch.filter(pa.array(mask[offset : offset + batch.num_rows])))
            offset += batch.num_rows
    return DatasetDict({split: Dataset.from_file(str(files[split])) for split in SPLITS})
