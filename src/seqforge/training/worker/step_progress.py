"""Rank 0's position within the epoch, for the driver's progress bar (`seqforge.training.controller.progress`): the
worker side, a Lightning callback, kept apart so that the controller's side imports no Lightning."""

from __future__ import annotations

import time

import lightning.pytorch as pl


class StepProgress(pl.Callback):
    """Rank 0's position within the epoch, sent to the driver at most once per `every` seconds."""

    def __init__(self, queue, every: float = 1.0) -> None:
        self.queue, self.every, self.last = queue, every, 0.0

    def on_train_batch_end(self, trainer: pl.Trainer, module, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        if trainer.global_rank == 0 and now - self.last >= self.every:
            self.last = now
            self.queue.put(("step", trainer.current_epoch + 1, batch_idx + 1, trainer.num_training_batches))
