"""Which checkpoints Ray Train registered, sent through a queue to rank 0's `RunLogger`
(`seqforge.training.worker.checkpoints`).

A Ray Train callback runs on the controller actor, which imports its module: this one imports no torch,
Lightning or MLflow, each of which would hold up every run's start by seconds."""

from __future__ import annotations

from ray.train import UserCallback


class RegisteredCheckpoints(UserCallback):
    """Ray Train callback (runs on the controller, after Ray registered a reported checkpoint, before the
    other callbacks see the report): the update of each registered checkpoint into `queue`, for rank 0's
    `RunLogger`. A checkpoint `ray.train.report` returned from is only registered at the controller's
    next poll of the workers; a worker that dies before it loses it, and the run resumes from the one before."""

    def __init__(self, queue) -> None:
        self.queue = queue

    def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
        if checkpoint is not None and metrics and metrics[0]:
            self.queue.put(int(metrics[0]["step"]))
