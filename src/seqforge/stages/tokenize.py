"""Train the subword tokenizer on the train split and encode every split to token ids.

Memory stays bounded: the tokenizer trains from an iterator over (a seeded sample of) the
memory-mapped train split, and encoding streams batches into Arrow files on disk. Text arrives
normalised by `prepare` (and by the task at inference), so the subword models add no normaliser.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, load_from_disk

from seqforge.config.shared import TokenizerCfg
from seqforge.core import paths
from seqforge.data.arrow_files import ScratchDir, write_arrow
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.tasks.registry import load_task

BATCH = 10_000
IDS = pa.list_(pa.int32())  # half the bytes of int64: vocabularies are far below 2**31
ENCODED = pa.schema([("source", pa.string()), ("target", pa.string()), ("src_ids", IDS), ("tgt_ids", IDS)])


def training_texts(train: Dataset, column: str, cfg: TokenizerCfg, seed: int = 0) -> Iterator[str]:
    """The `column` texts of at most `cfg.max_train_sentences` train pairs (a seeded sample, in corpus order)."""
    limit = cfg.max_train_sentences // (2 if cfg.joint else 1)
    texts = train.data.table.column(column)
    if len(texts) <= limit:
        for chunk in texts.chunks:
            yield from chunk.to_pylist()
        return
    chosen = np.sort(np.random.default_rng(seed).choice(len(texts), size=limit, replace=False))
    for start in range(0, limit, BATCH):
        yield from texts.take(pa.array(chosen[start : start + BATCH])).to_pylist()


def encoded(batch: pa.RecordBatch, tokenizer: SubwordTokenizer) -> pa.RecordBatch:
    """(source, target) texts -> the same with `src_ids` and `tgt_ids` (no BOS/EOS: batching adds them)."""
    ids = [
        pa.array(tokenizer.encode(batch.column(column).to_pylist(), side), IDS)
        for column, side in (("source", "source"), ("target", "target"))
    ]
    return pa.RecordBatch.from_arrays([batch.column("source"), batch.column("target"), *ids], schema=ENCODED)


def tokenize_splits(prepared: Path, cfg: TokenizerCfg, scratch: Path) -> tuple[DatasetDict, SubwordTokenizer]:
    """(source, target) text splits -> the same splits with `src_ids`/`tgt_ids` columns (Arrow on disk)."""
    splits: DatasetDict = load_from_disk(str(prepared))
    tokenizer = SubwordTokenizer.train(
        training_texts(splits["train"], "source", cfg), training_texts(splits["train"], "target", cfg), cfg
    )
    for split, data in splits.items():
        batches = (encoded(b, tokenizer) for b in data.data.table.select(["source", "target"]).to_batches(BATCH))
        write_arrow(scratch / f"{split}.arrow", batches, ENCODED)  # not in prepare's output folder
    return DatasetDict({split: Dataset.from_file(str(scratch / f"{split}.arrow")) for split in splits}), tokenizer


def tokenize_task(task_name: str) -> SubwordTokenizer:
    """The `tokenize` stage: `artifacts/prepared/<task>` -> `artifacts/tokenized/<task>` + tokenizer."""
    task = load_task(task_name)
    out = paths.tokenized_dir(task_name)
    with ScratchDir(paths.ARTIFACTS) as scratch:
        splits, tokenizer = tokenize_splits(paths.prepared_dir(task_name), task.tokenizer, scratch)
        splits.save_to_disk(str(scratch / "tokenized"))
        tokenizer.save(scratch / "tokenized" / "tokenizer.json")
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        (scratch / "tokenized").rename(out)
    print(
        f"tokenize {task_name}: {tokenizer.library} vocab {tokenizer.vocab_size('source')}/"
        f"{tokenizer.vocab_size('target')} (joint={tokenizer.joint}) -> {out}"
    )
    return tokenizer
