"""Keeping a time budget while training: after each evaluation a run with a time budget re-plans the
evaluation intervals it has left from the wall time its last interval really took, so `budget: 33m` ends
at about 33 minutes (by then, or at most a quarter interval after) whether the plan's rate (a probe, the
last run: `seqforge.training.budget.rate`) was right or not. The linear schedule follows (it reads the
planned updates at each step), a re-plan keeps at least one interval ahead (the schedule reaches zero at the
end of one), and the planned updates ride in every
checkpoint with the training seconds spent, so a resumed run keeps its budget. Every rank takes rank
0's decision. `planned_updates` is logged at each evaluation: the epoch lines and the stage's end read it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.trainer.states import TrainerFn

TOLERANCE = 0.02  # of the budget: a plan whose end lands this close to where it should is kept (no re-plan on noise)
OVERRUN = 0.25  # of an interval: the last one may end this far past the budget rather than leave most of it unused


def intervals_left(budget_s: float, spent_s: float, interval_s: float, planned_left: int) -> int:
    """How many evaluation intervals of `interval_s` to go on for, `spent_s` into `budget_s`: as many as end
    by the budget or at most `OVERRUN` of an interval (or `TOLERANCE` of the budget) past it, and at least
    one; `planned_left` while that count is within `TOLERANCE` of the budget of it."""
    reach = budget_s - spent_s + max(OVERRUN * interval_s, TOLERANCE * budget_s)
    band = TOLERANCE * budget_s
    if planned_left * interval_s <= reach + band and (planned_left + 1) * interval_s > reach - band:
        return planned_left
    return max(math.floor(reach / interval_s), 1)


class BudgetKeeper(pl.Callback):
    """Re-plan a time-budget run's remaining updates at each evaluation (`intervals_left`). `budget_s`: the
    training seconds the plan has (its budget less start-up), `every`: updates between evaluations,
    `planned`: the plan's updates; `queue`: where to tell the driver (None: nobody watches)."""

    def __init__(self, name: str, budget_s: float, every: int, planned: int, queue=None) -> None:
        self.name, self.budget_s, self.every, self.total, self.queue = name, budget_s, every, planned, queue
        self.spent_before = 0.0  # training seconds before this process (a resumed run's checkpoint)
        self.start: float | None = None
        self.mark = (0.0, 0)  # (time, update) of the last evaluation
        self.trainer: pl.Trainer | None = None

    def spent(self) -> float:
        return self.spent_before + (time.monotonic() - self.start if self.start is not None else 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"planned_updates": self.total, "spent_s": self.spent()}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resuming: the re-planned updates are the stop before the loop decides whether it is done."""
        self.total, self.spent_before = state_dict["planned_updates"], state_dict["spent_s"]
        if self.trainer is not None:
            self._apply(self.trainer)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.monotonic()
        self.mark = (self.start, trainer.global_step)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or trainer.global_step == self.mark[1]:
            return
        now, step = time.monotonic(), trainer.global_step
        interval_s = (now - self.mark[0]) * self.every / (step - self.mark[1])
        self.mark = (now, step)
        done, planned_left = step // self.every, self.total // self.every - step // self.every
        if planned_left > 0:
            left = intervals_left(self.budget_s, self.spent(), interval_s, planned_left)
            total = trainer.strategy.broadcast((done + left) * self.every, src=0)
            if total != self.total:
                self._tell(
                    trainer,
                    f"{self.name}: re-planned at update {step:,}: {interval_s:.0f} s per evaluation "
                    f"interval measured, {total - step:,} updates more ({left} evaluations) to fit "
                    f"the budget; {total:,} in all (was {self.total:,})",
                )
                self.total = total
                self._apply(trainer)
        pl_module.log("planned_updates", float(self.total), on_step=False, on_epoch=True)

    def _apply(self, trainer: pl.Trainer) -> None:
        """The planned updates as Lightning's stop, and enough epochs to reach them."""
        trainer.fit_loop.epoch_loop.max_steps = self.total
        per_epoch = trainer.datamodule.updates_per_epoch()
        trainer.fit_loop.max_epochs = max(trainer.fit_loop.max_epochs, math.ceil(self.total / per_epoch))

    def _tell(self, trainer: pl.Trainer, line: str) -> None:
        if trainer.global_rank == 0 and self.queue is not None:
            self.queue.put(line)
