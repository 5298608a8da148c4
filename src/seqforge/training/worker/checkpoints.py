"""Ray Train checkpoints of a Lightning run: one after every evaluation (each epoch's end, or every N
updates of a time or update plan: `seqforge.training.budget.plan`), scored on the task's validation metric, and
with `train.checkpoint_every_n_steps` one every N updates in between. Such an in-between checkpoint is
only a resume point (`mid_epoch` in its metrics): it scores the worst finite value of the
metric, so Ray never keeps it as a best checkpoint (it stays while it is the latest), and export never
picks it. Not NaN or an infinity: Ray's snapshot of its checkpoints (JSON through pydantic) writes those
as null, and a run resumed from that snapshot then fails on its first checkpoint, comparing a number
with None.

Each checkpoint carries what Lightning saves (weights, optimizer, schedule, loop progress) and the
training loader's position (`ResumableLoader`), so a restarted worker group goes on with the next batch;
the metrics logged before a checkpoint go to MLflow once Ray Train has registered it (`RunLogger.seal`,
`RegisteredCheckpoints`), the checkpoint carries those MLflow may not hold yet (sent again on resume), and
a resumed run logs the update it resumed from (`resumed_from_update`).

Before each checkpoint, the storage (`storage_path`: a bucket on a cluster) must answer; while it
does not, the write waits and retries, then fails with `CheckpointStorageError`, as it does at once when local
storage has no room for the checkpoint (`room_for`, and a copy that runs out of space): Ray restarts the attempt
up to `train.max_failures` times, and each restarted attempt checks the room before it trains. A checkpoint whose
upload breaks off is never reported to Ray Train. Each checkpoint ends with its manifest (`storage.seal`: its
file's size and SHA-256): one that Ray registered but whose file was cut or lost later (a node that died with
unwritten pages, a storage that acknowledged too soon) is passed over on resume (`resume_point`), in one line,
for the newest complete one.
"""

from __future__ import annotations

import errno
import shutil
import sys
import tempfile
from pathlib import Path

import lightning.pytorch as pl
import ray.train
from lightning.pytorch.trainer.states import TrainerFn
from pyarrow.fs import FileSelector, FileType
from ray.train import Checkpoint

from seqforge.tracking.run_logger import RunLogger
from seqforge.training.worker.storage import CHECKPOINT_NAME, full, room_for, seal, torn, wait_for_storage


def resume_point(latest: Checkpoint) -> tuple[Checkpoint | None, str | None]:
    """The checkpoint to resume from: Ray's `latest` when it is complete (`storage.torn`), else the newest complete
    one before it in the run's folder (None: none is), with a line saying which was passed over and why."""
    with latest.as_directory() as folder:
        why = torn(Path(folder))
    if why is None:
        return latest, None
    run_dir = latest.path.rsplit("/", 1)[0]
    earlier = sorted(
        (
            info.path
            for info in latest.filesystem.get_file_info(FileSelector(run_dir))
            if info.type == FileType.Directory and info.base_name.startswith("checkpoint_") and info.path < latest.path
        ),
        reverse=True,
    )
    for path in earlier:
        candidate = Checkpoint(path, filesystem=latest.filesystem)
        with candidate.as_directory() as folder:
            if torn(Path(folder)) is None:
                return candidate, f"checkpoint {latest.path} is incomplete ({why}): resuming from {path}"
    return None, f"checkpoint {latest.path} is incomplete ({why}) and no earlier one is complete: starting over"


class RayCheckpoints(pl.Callback):
    """Report a checkpoint to Ray Train after each evaluation (at each epoch's end, or every `eval_every`
    updates) and a resume point every `every_n_steps` updates; each waits up to `retries` times for
    unreachable storage (`wait_for_storage`)."""

    def __init__(
        self, monitor: tuple[str, str], eval_every: int | None, every_n_steps: int | None, retries: int
    ) -> None:
        """`monitor`: the task's validation metric and its mode (`max`/`min`)."""
        self.eval_every = eval_every
        metric, mode = monitor
        # a resume point's score: below any epoch's, and a number after a round trip through Ray's snapshot
        self.resume_point = {metric: -sys.float_info.max if mode == "max" else sys.float_info.max, "mid_epoch": 1}
        self.every, self.retries = every_n_steps, retries
        ctx = ray.train.get_context()
        self.storage = ctx.get_storage()
        self.scratch = Path(
            tempfile.gettempdir(), f"seqforge-ckpt-{ctx.get_experiment_name()}-rank{ctx.get_world_rank()}"
        )
        self.last_step = 0

    def on_train_start(self, trainer: pl.Trainer, module) -> None:
        """A run that resumed from a checkpoint (a restarted worker group, a rerun stage) says from which
        update, as the metric `resumed_from_update`: the updates after it were done again."""
        if trainer.ckpt_path is not None and trainer.logger is not None:
            trainer.logger.log_metrics({"resumed_from_update": trainer.global_step}, step=trainer.global_step)

    def on_save_checkpoint(self, trainer: pl.Trainer, module, checkpoint: dict) -> None:
        """The checkpoint carries the metrics MLflow may not hold yet (`RunLogger.unsent`)."""
        if isinstance(trainer.logger, RunLogger):
            checkpoint["unsent_metrics"] = trainer.logger.unsent()

    def on_load_checkpoint(self, trainer: pl.Trainer, module, checkpoint: dict) -> None:
        """Resuming: send what the checkpoint carries (`RunLogger.resend`); a killed worker may not have."""
        if isinstance(trainer.logger, RunLogger) and "unsent_metrics" in checkpoint:
            trainer.logger.resend(checkpoint["unsent_metrics"])

    def on_train_batch_end(self, trainer: pl.Trainer, module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if (
            self.every is None
            or step % self.every
            or step == self.last_step  # not due, or no update since
            or (
                step % self.eval_every == 0
                if self.eval_every  # an evaluation's checkpoint follows
                else batch_idx + 1 >= trainer.num_training_batches
            )
        ):
            return
        self._report(trainer, self.resume_point)

    def on_validation_end(self, trainer: pl.Trainer, module) -> None:
        if self.eval_every and not trainer.sanity_checking and trainer.state.fn == TrainerFn.FITTING:
            self._report(trainer, {})

    def on_train_epoch_end(self, trainer: pl.Trainer, module) -> None:
        if not self.eval_every:
            self._report(trainer, {})

    def _report(self, trainer: pl.Trainer, extra: dict) -> None:
        """Every rank saves and reports (Ray Train V2 waits for all); the metrics are rank 0's epoch line.
        What was logged before it is sealed with it (`RunLogger.seal`): it goes to MLflow once Ray has
        registered this checkpoint, from which a restart redoes nothing logged before it."""
        self.last_step = trainer.global_step
        metrics = {k: v.item() for k, v in trainer.callback_metrics.items()}
        metrics |= {"epoch": trainer.current_epoch, "step": trainer.global_step, **extra}
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)
        trainer.save_checkpoint(self.scratch / CHECKPOINT_NAME, weights_only=False)  # rank 0 writes it
        if trainer.is_global_zero:
            seal(self.scratch)
        fs, path = self.storage.storage_filesystem, self.storage.experiment_fs_path
        wait_for_storage(fs, path, self.retries)
        room_for(fs, path, self.scratch)
        try:
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(self.scratch))
        except OSError as err:  # the room went while the files were copied
            if err.errno != errno.ENOSPC and "No space left" not in str(err):
                raise
            raise full(path, str(err).splitlines()[0]) from None
        if isinstance(trainer.logger, RunLogger):
            trainer.logger.seal(trainer.global_step)
        trainer.strategy.barrier()
        shutil.rmtree(self.scratch, ignore_errors=True)
