"""Tokenized splits as PyTorch datasets over Arrow, and the Lightning data module of token-budget batches."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial

import lightning.pytorch as pl
import numpy as np
from datasets import Dataset as HFDataset
from torch.utils.data import DataLoader, Dataset

from seqforge.config.shared import TrainCfg
from seqforge.data.batching import ResumableLoader, TokenBudgetBatchSampler, bleu_sample, collate


class TokenizedSplit(Dataset):
    """One split of token ids over Arrow (memory-mapped from disk, or in Ray's shared object store);
    lengths are numpy arrays. Rows are read from the Arrow table per batch."""

    def __init__(self, data: HFDataset) -> None:
        import pyarrow.compute as pc

        self.data = data
        table = self.data.data
        src, tgt = (pc.list_value_length(table.column(c)).to_numpy() for c in ("src_ids", "tgt_ids"))
        self.lengths = np.stack([src + 1, tgt + 1], axis=1).astype(np.int32)  # + EOS / BOS
        self._ids = self.data.select_columns(["src_ids", "tgt_ids"])

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitems__(self, indices: list[int]) -> list[dict]:
        rows = self._ids[indices]
        return [
            {"src_ids": s, "tgt_ids": t, "index": i}
            for s, t, i in zip(rows["src_ids"], rows["tgt_ids"], indices, strict=True)
        ]

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]

    def targets(self, indices: list[int]) -> list[str]:
        """Reference texts of rows `indices` (validation BLEU)."""
        return self.data.select_columns(["target"])[indices]["target"]


def updates_per_epoch(lengths: np.ndarray, cfg: TrainCfg) -> int:
    """Optimizer updates in one epoch of training pairs with `lengths` on each of `cfg.num_workers` workers."""
    sampler = TokenBudgetBatchSampler(
        lengths,
        cfg.batch_tokens,
        shuffle=True,
        seed=cfg.seed,
        world_size=cfg.num_workers,
        even=True,
        multiple=cfg.pad_multiple(),
    )
    return math.ceil(len(sampler) / cfg.accumulate_grad_batches)


class Seq2SeqDataModule(pl.LightningDataModule):
    """Token-budget batches of a task's `train` and `validation` splits (`splits`: from disk, or
    `seqforge.data.shipping.splits` on a Ray worker)."""

    def __init__(self, splits: Mapping[str, HFDataset], train_cfg: TrainCfg) -> None:
        super().__init__()
        self.splits, self.cfg = splits, train_cfg

    def setup(self, stage: str | None = None) -> None:
        self.train_set = TokenizedSplit(self.splits["train"])
        self.val_set = TokenizedSplit(self.splits["validation"])
        self.bleu_rows = bleu_sample(len(self.val_set), self.cfg.eval_bleu_sentences)

    def _sampler(self, data: TokenizedSplit, train: bool) -> TokenBudgetBatchSampler:
        return TokenBudgetBatchSampler(
            data.lengths,
            self.cfg.batch_tokens,
            shuffle=train,
            seed=self.cfg.seed,
            rank=self.trainer.global_rank,
            world_size=self.trainer.world_size,
            even=train,
            multiple=self.cfg.pad_multiple(),
        )

    def updates_per_epoch(self) -> int:
        """Optimizer updates in one training epoch on this rank (the last partial accumulation steps too)."""
        return updates_per_epoch(self.train_set.lengths, self.cfg)

    def train_dataloader(self) -> ResumableLoader:
        loop = self.trainer.fit_loop.epoch_loop
        return ResumableLoader(
            self.train_set,
            self._sampler(self.train_set, train=True),
            trained=lambda: loop.batch_progress.current.processed,
            pin_memory=self.cfg.use_gpu,  # pinned: Lightning's copies to the GPU are then asynchronous
        )

    def val_dataloader(self) -> DataLoader:
        sampler = self._sampler(self.val_set, train=False)
        collate_fn = partial(collate, multiple=sampler.multiple)
        return DataLoader(self.val_set, batch_sampler=sampler, collate_fn=collate_fn, pin_memory=self.cfg.use_gpu)
