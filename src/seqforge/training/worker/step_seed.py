"""Random numbers that a resumed run draws again: each training batch seeds the generator from (the run's seed,
its epoch, its place in the epoch, the worker's rank) before it runs, so dropout's masks are a function of the
batch, not of how many batches this process has run. Lightning's checkpoints do not carry the generators' state:
without this, a run resumed from a checkpoint (a restarted worker group, a rerun stage) drew other masks than the
uninterrupted run and ended with other weights."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch


class StepSeed(pl.Callback):
    """Seed torch's generator for each training batch from (`seed`, epoch, batch index, rank)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        key = [self.seed, trainer.current_epoch, batch_idx, trainer.global_rank]
        torch.manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
