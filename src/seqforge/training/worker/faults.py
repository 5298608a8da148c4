"""Fault injection for fault-tolerance tests: a Ray Train worker SIGKILLs itself at a chosen point.

`SEQFORGE_KILL_WORKER="<rank>:<update>:<point>:<marker file>"` in the driver's environment (it reaches
the workers through `training.budget.cluster.ray_runtime_env`): the worker of that rank kills its own process once
(the marker file, created first, keeps the restarted worker group alive; it holds the update the worker died
at), at `<point>`:

- `update`: just before training update `<update>`;
- `validation`: at the end of the first validation after update `<update>`, once its metrics are
  logged and before that epoch's checkpoint is reported;
- `checkpoint`: inside the first checkpoint write after update `<update>`, once the state is gathered and before
  any file of it is written.

The kill point is a count of updates, not a wall-clock delay, so a test built on it checks the same
thing on a fast machine and a slow one.
"""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl

from seqforge.training.worker.fault_variable import VARIABLE

POINTS = ("update", "validation", "checkpoint")


class KillWorkerAt(pl.Callback):
    """SIGKILL this process at `point` of update `update` on rank `rank`, unless `marker` already exists."""

    def __init__(self, rank: int, update: int, point: str, marker: str) -> None:
        if point not in POINTS:
            raise ValueError(f"{VARIABLE}: point {point!r} is not one of {', '.join(POINTS)}")
        self.rank, self.update, self.point, self.marker = rank, update, point, marker

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        if self.point == "update" and trainer.global_step == self.update:
            self._kill(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module) -> None:
        if self.point == "validation" and not trainer.sanity_checking and trainer.global_step >= self.update:
            self._kill(trainer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict) -> None:
        if self.point == "checkpoint" and trainer.global_step >= self.update:
            self._kill(trainer)

    def _kill(self, trainer: pl.Trainer) -> None:
        if trainer.global_rank != self.rank:
            return
        try:
            marker = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # killed once already: this is the restarted worker group
        os.write(marker, str(trainer.global_step).encode())  # the update it died at
        os.close(marker)
        os.kill(os.getpid(), signal.SIGKILL)


def injected() -> list[pl.Callback]:
    """The fault `SEQFORGE_KILL_WORKER` asks for, as Lightning callbacks (none when it is unset)."""
    spec = os.environ.get(VARIABLE)
    if not spec:
        return []
    try:
        rank, update, point, marker = spec.split(":", 3)
        return [KillWorkerAt(int(rank), int(update), point, marker)]
    except ValueError as err:
        raise ValueError(
            f"{VARIABLE}={spec!r}: expected <rank>:<update>:<{'|'.join(POINTS)}>:<marker file> ({err})"
        ) from None
