"""Ray Train checkpoints of a Lightning run: one at every epoch's end, scored on the task's validation
metric, and with `train.checkpoint_every_n_steps` one every N updates in between. A mid-epoch
checkpoint is only a resume point: its score is NaN, so Ray never keeps it as a best checkpoint
(it stays while it is the latest) and export never picks it.

Each checkpoint carries what Lightning saves (weights, optimizer, schedule, loop progress) and the
training loader's position (`ResumableLoader`), so a restarted worker group goes on with the next batch.

Before each checkpoint, the storage (`storage_path`: a bucket on a cluster) must answer; while it
does not, the write waits and retries, then fails with `CheckpointStorageError`. A checkpoint whose
upload breaks off is never reported to Ray Train, so no run resumes from or exports a half-written one.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import ray.train
from ray.train import Checkpoint
from ray.train.lightning import RayTrainReportCallback

from seqforge.lightning_module import RunLogger

CHECKPOINT_NAME = RayTrainReportCallback.CHECKPOINT_NAME  # the Lightning file inside a Ray checkpoint


class CheckpointStorageError(RuntimeError):
    """Ray's checkpoint storage did not answer before a checkpoint was written, after every retry."""


def wait_for_storage(fs, path: str, retries: int, first_wait: float = 1.0) -> None:
    """Return once storage `fs` answers a read of `path` (the run's folder), retrying `retries` times
    with doubling waits; then raise `CheckpointStorageError` with the storage's last error."""
    for attempt in range(retries + 1):
        try:
            fs.get_file_info(path)
            return
        except OSError as err:
            if attempt == retries:
                waited = first_wait * (2**retries - 1)
                raise CheckpointStorageError(
                    f"checkpoint storage {fs.type_name}:{path} did not answer ({err}); gave up after "
                    f"{retries} retries over {waited:.0f} s. The last complete checkpoint stays the run's "
                    "resume point.") from None
            time.sleep(first_wait * 2**attempt)


def storage_unreachable(uri: str, retries: int) -> str | None:
    """Why Ray's storage at `uri` does not answer after `retries` (`wait_for_storage`), or None when it does."""
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    try:
        wait_for_storage(fs, path, retries)
    except CheckpointStorageError as err:
        return str(err)
    return None


class RayCheckpoints(pl.Callback):
    """Report a checkpoint to Ray Train at each epoch's end and every `every_n_steps` updates; each
    waits up to `retries` times for unreachable storage (`wait_for_storage`)."""

    def __init__(self, monitor: str, every_n_steps: int | None, retries: int, flush_timeout: float = 2.0) -> None:
        self.monitor, self.every, self.retries, self.flush_timeout = monitor, every_n_steps, retries, flush_timeout
        ctx = ray.train.get_context()
        self.storage = ctx.get_storage()
        self.scratch = Path(tempfile.gettempdir(),
                            f"seqforge-ckpt-{ctx.get_experiment_name()}-rank{ctx.get_world_rank()}")
        self.last_step = 0

    def on_train_batch_end(self, trainer: pl.Trainer, module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if (self.every is None or step % self.every or step == self.last_step  # not due, or no update since
                or batch_idx + 1 >= trainer.num_training_batches):  # the epoch-end checkpoint follows
            return
        self._report(trainer, {self.monitor: math.nan, "mid_epoch": 1})

    def on_train_epoch_end(self, trainer: pl.Trainer, module) -> None:
        self._report(trainer, {})

    def _report(self, trainer: pl.Trainer, extra: dict) -> None:
        """Every rank saves and reports (Ray Train V2 waits for all); the metrics are rank 0's epoch line.
        What was logged reaches MLflow first (waiting `flush_timeout` at most while the server is down): a report
        can end the run (a Tune trial stopped by ASHA) before queued metrics would be sent."""
        if isinstance(trainer.logger, RunLogger):
            trainer.logger.outbox.flush(self.flush_timeout)
        self.last_step = trainer.global_step
        metrics = {k: v.item() for k, v in trainer.callback_metrics.items()}
        metrics |= {"epoch": trainer.current_epoch, "step": trainer.global_step, **extra}
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)
        trainer.save_checkpoint(self.scratch / CHECKPOINT_NAME, weights_only=False)
        wait_for_storage(self.storage.storage_filesystem, self.storage.experiment_fs_path, self.retries)
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(self.scratch))
        trainer.strategy.barrier()
        shutil.rmtree(self.scratch, ignore_errors=True)
