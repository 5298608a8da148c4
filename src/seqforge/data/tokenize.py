"""Train the subword tokenizer on the train split and encode every split to token ids."""

from __future__ import annotations

from pathlib import Path

from datasets import DatasetDict, load_from_disk

from seqforge import paths
from seqforge.config import TokenizerCfg, load_config
from seqforge.data.tokenizer import SubwordTokenizer


def tokenize_splits(prepared: Path, cfg: TokenizerCfg) -> tuple[DatasetDict, SubwordTokenizer]:
    """(source, target) text splits -> the same splits with `src_ids`/`tgt_ids` columns."""
    splits: DatasetDict = load_from_disk(str(prepared))
    train = splits["train"]
    tokenizer = SubwordTokenizer.train(list(train["source"]), list(train["target"]), cfg)

    def encode(batch: dict) -> dict:
        return {
            "src_ids": tokenizer.encode(batch["source"], "source"),
            "tgt_ids": tokenizer.encode(batch["target"], "target"),
        }

    # in memory: caching would write files into the prepare stage's output directory
    return splits.map(encode, batched=True, batch_size=2000, keep_in_memory=True), tokenizer


def tokenize_task(task: str) -> SubwordTokenizer:
    """The `tokenize` stage: `artifacts/prepared/<task>` -> `artifacts/tokenized/<task>` + tokenizer."""
    cfg = load_config().task(task).tokenizer
    splits, tokenizer = tokenize_splits(paths.prepared_dir(task), cfg)
    splits.save_to_disk(str(paths.tokenized_dir(task)))
    tokenizer.save(paths.tokenizer_file(task))
    print(f"tokenize {task}: vocab {tokenizer.vocab_size('source')}/{tokenizer.vocab_size('target')} "
          f"(joint={tokenizer.joint}) -> {paths.tokenized_dir(task)}")
    return tokenizer
