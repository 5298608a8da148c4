"""Train the subword tokenizer on the train split and encode every split to token ids.

Memory stays bounded: the tokenizer trains from an iterator over (a seeded sample of) the
memory-mapped train split, and encoding runs in batches into Arrow files on disk.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Sequence, Value, load_from_disk

from seqforge import paths
from seqforge.config import TokenizerCfg, load_task
from seqforge.data.readers import ScratchDir
from seqforge.data.tokenizer import SubwordTokenizer

BATCH = 10_000
IDS = Sequence(Value("int32"))  # half the bytes of the default int64: vocabularies are far below 2**31


def _texts(data: Dataset, column: str) -> Iterator[str]:
    for batch in data.select_columns([column]).iter(batch_size=BATCH):
        yield from batch[column]


def training_sample(train: Dataset, cfg: TokenizerCfg, seed: int = 0) -> Dataset:
    """At most `cfg.max_train_sentences` pairs of the train split (a seeded sample when it is larger)."""
    limit = cfg.max_train_sentences // (2 if cfg.joint else 1)
    return train if len(train) <= limit else train.shuffle(seed=seed).select(range(limit))


def tokenize_splits(prepared: Path, cfg: TokenizerCfg, scratch: Path,
                    normalization: str = "nfc") -> tuple[DatasetDict, SubwordTokenizer]:
    """(source, target) text splits -> the same splits with `src_ids`/`tgt_ids` columns (Arrow on disk)."""
    splits: DatasetDict = load_from_disk(str(prepared))
    sample = training_sample(splits["train"], cfg)
    tokenizer = SubwordTokenizer.train(_texts(sample, "source"), _texts(sample, "target"), cfg, normalization)

    def encode(batch: dict) -> dict:
        return {
            "src_ids": tokenizer.encode(batch["source"], "source"),
            "tgt_ids": tokenizer.encode(batch["target"], "target"),
        }

    encoded = {split: data.map(encode, batched=True, batch_size=BATCH,
                               features=Features({**data.features, "src_ids": IDS, "tgt_ids": IDS}),
                               cache_file_name=str(scratch / f"{split}.arrow"))  # not in prepare's output
               for split, data in splits.items()}
    return DatasetDict(encoded), tokenizer


def tokenize_task(task_name: str) -> SubwordTokenizer:
    """The `tokenize` stage: `artifacts/prepared/<task>` -> `artifacts/tokenized/<task>` + tokenizer."""
    task = load_task(task_name)
    out = paths.tokenized_dir(task_name)
    with ScratchDir(paths.ARTIFACTS) as scratch:
        splits, tokenizer = tokenize_splits(paths.prepared_dir(task_name), task.tokenizer, scratch,
                                            task.data.normalization)
        splits.save_to_disk(str(scratch / "tokenized"))
        tokenizer.save(scratch / "tokenized" / "tokenizer.json")
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        (scratch / "tokenized").rename(out)
    print(f"tokenize {task_name}: {tokenizer.library} vocab {tokenizer.vocab_size('source')}/"
          f"{tokenizer.vocab_size('target')} (joint={tokenizer.joint}) -> {out}")
    return tokenizer
