"""A time budget is kept while training: a run whose plan's rate was wrong re-plans its remaining evaluation
intervals from the wall time they take, the linear schedule still reaches zero at its last update, and a
resumed run keeps the updates and the seconds already spent."""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from seqforge.training.worker.budget_keeper import TOLERANCE, BudgetKeeper, intervals_left
from seqforge.training.worker.schedule import step_schedule

STEP_S = 0.04  # a training step's wall time in the toy run


@pytest.mark.parametrize(
    ("spent", "interval", "planned_left", "left"),
    [
        (0.0, 10.0, 10, 10),  # on plan
        (0.0, 10.0 * (1 + TOLERANCE / 2), 10, 10),  # a little slow: kept (within the tolerance)
        (0.0, 12.0, 10, 8),  # slower: fewer intervals, as many as fit
        (0.0, 8.0, 10, 12),  # faster: more
        (95.0, 10.0, 3, 1),  # out of time: one more interval, so the schedule still ends at zero
        (50.0, 25.0, 2, 2),  # exactly on plan
        (73.0, 14.0, 1, 2),  # 27 s left: a second interval of 14 ends 1 s past the budget rather than 13 s short
        (73.0, 14.0, 3, 2),
        (80.0, 14.0, 1, 1),  # 20 s left: a second one would end 8 s past it (over a quarter interval)
    ],
)
def test_intervals_left(spent: float, interval: float, planned_left: int, left: int) -> None:
    assert intervals_left(100.0, spent, interval, planned_left) == left


class Toy(pl.LightningModule):
    """A linear model whose every update takes `STEP_S`, on the linear schedule `step_schedule` makes."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        time.sleep(STEP_S)
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx) -> None:
        self.log("val_loss", self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, step_schedule("linear", 1, lambda: self.trainer.max_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class ToyData(pl.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.data = TensorDataset(torch.randn(20, 2))

    def updates_per_epoch(self) -> int:
        return 20

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=1)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=10)


class SaveAt(pl.Callback):
    """Save a checkpoint after the evaluation at update `step` (as the run's checkpoints are: `RayCheckpoints`)."""

    def __init__(self, step: int, path: Path) -> None:
        self.step, self.path = step, path

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)


def fit(
    planned: int, budget_s: float, every: int = 5, callbacks: tuple = (), ckpt_path: Path | None = None
) -> tuple[pl.Trainer, float]:
    """The toy run as `train_worker` makes it: the plan's updates and epochs, evaluated every `every`."""
    trainer = pl.Trainer(
        max_steps=planned,
        max_epochs=1,
        val_check_interval=every,
        check_val_every_n_epoch=None,
        callbacks=[BudgetKeeper("toy", budget_s, every, planned), *callbacks],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    start = time.monotonic()
    trainer.fit(Toy(), datamodule=ToyData(), ckpt_path=ckpt_path)
    return trainer, time.monotonic() - start


@pytest.fixture(scope="module")
def warm() -> None:
    """One short toy run first: a process's first Lightning fit spends its first interval on one-time work
    (seen in a fresh clone's first `make test`), which the keeper would read as this run's pace."""
    fit(5, 60.0, 5)


@pytest.mark.parametrize(("planned", "grows"), [(10, True), (60, False)])
def test_a_run_keeps_its_time_budget_whatever_its_plan_said(warm, planned: int, grows: bool) -> None:
    """Planned for 10 (too few) or 60 (too many) updates of 0.04 s, with 1.2 s to spend: ~30 updates either way."""
    budget_s, every = 1.2, 5
    trainer, took = fit(planned, budget_s, every)
    keeper = next(c for c in trainer.callbacks if isinstance(c, BudgetKeeper))
    done = trainer.global_step
    assert done == keeper.total == trainer.max_steps and done % every == 0  # ends at an evaluation
    assert (done > planned) if grows else (done < planned)
    assert took < budget_s + 2 * every * STEP_S + 1.0  # within the budget, give or take an interval and start-up
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.0  # the schedule ended with the re-planned run
    assert trainer.callback_metrics["planned_updates"] == done
    state = keeper.state_dict()
    assert state["planned_updates"] == done and state["spent_s"] > 0.5 * budget_s  # a resumed run goes on from here


def test_a_resumed_run_keeps_the_re_planned_updates_and_the_seconds_spent(tmp_path: Path) -> None:
    """Planned 10 updates, re-planned to more, interrupted after update 15: the resumed run (built, as a
    restarted worker's is, with the plan's 10) goes on past 15 and counts the seconds already spent. 2.4 s: room
    for 30 or more updates even where Lightning's own work per update is twice the 0.04 s step (a loaded CI
    machine re-planned a 1.2 s budget to exactly 15)."""
    budget_s, ckpt = 2.4, tmp_path / "at15.ckpt"
    first, _ = fit(10, budget_s, callbacks=(SaveAt(15, ckpt),))
    assert first.global_step > 15 and ckpt.is_file()
    resumed, took = fit(10, budget_s, ckpt_path=ckpt)
    keeper = next(c for c in resumed.callbacks if isinstance(c, BudgetKeeper))
    assert resumed.global_step > 15 and resumed.global_step % 5 == 0
    assert keeper.spent_before > 0.3  # 15 updates of 0.04 s and three evaluations before the checkpoint
    assert took < budget_s - keeper.spent_before + 2 * 5 * STEP_S + 1.0
