"""Rank 0's MLflow logger: metrics held until Ray Train registers the checkpoint that holds their work,
then sent through the outbox (every metric once, through worker restarts and tracking outages)."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

from seqforge.tracking.outbox import MetricOutbox


class RunLogger(MLFlowLogger):
    """Lightning's MLflow logger writing into a run its driver owns.

    Metrics are held until Ray Train has registered a checkpoint holding the work they describe: at
    each reported checkpoint `RayCheckpoints` seals what was logged before it (`seal`), and once the
    controller has registered that checkpoint
    (`seqforge.training.controller.checkpoint_queue.RegisteredCheckpoints`, through the
    `registered` queue) it goes to MLflow (`release`). A worker group restarted from a checkpoint
    redoes the work after it: its metrics reach MLflow once, from the attempt the run goes on from;
    those of a killed attempt die with it. Each checkpoint also carries what MLflow may not hold yet
    (`unsent`): a worker killed before it sent what a registered checkpoint released would lose it, so a
    worker group restarted from that checkpoint sends it again (`resend`, to the run it was logged in: a stage
    rerun after a killed driver tracks a new run), with the same timestamps: MLflow's SQL stores keep one copy
    of a metric logged twice. Released metrics go out through a `MetricOutbox`: a
    tracking-server outage neither stalls nor fails training, and what was logged meanwhile is sent
    once the server answers again (`notify` tells the person watching). It never ends the run: a
    worker of a Tune trial that ASHA stopped could otherwise mark the run finished or failed after
    the sweep recorded it as stopped.
    """

    def __init__(
        self,
        tracking_uri: str,
        run_id: str,
        notify: Callable[[str], None],
        registered=None,
        flush_timeout: float = 600.0,
        register_timeout: float = 60.0,
    ) -> None:
        """`registered`: a queue of the updates of the checkpoints Ray registers (rank 0 only; None elsewhere);
        `register_timeout`: how long the end of training waits for its last checkpoint to be registered."""
        from mlflow import MlflowClient

        super().__init__(tracking_uri=tracking_uri, run_id=run_id)
        # the run exists (its driver started it): Lightning's setup, which touches `experiment`, would otherwise
        # ask the server for it (`get_run`), and fail the worker when an outage covers the start of training
        self._initialized = True
        self.client = MlflowClient(tracking_uri)
        self.outbox = MetricOutbox(lambda items: _send(self.client, run_id, items), notify)
        self.earlier: MetricOutbox | None = None  # to a killed driver's run, from the stage's rerun (`resend`)
        self.tracked_run, self.flush_timeout, self.register_timeout = run_id, flush_timeout, register_timeout
        self.lock = threading.Condition()
        self.held: list[list] = []  # metric batches logged since the last reported checkpoint
        self.sealed: deque[tuple[int, list[list]]] = deque()  # (a reported checkpoint's update, what came before it)
        self.last_sealed = self.last_registered = -1  # updates of the last checkpoint reported, and registered
        self.watching = registered is not None
        if registered is not None:
            threading.Thread(
                target=self._release_registered, args=(registered,), name="mlflow-commits", daemon=True
            ).start()

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), step or 0
        self._route([Metric(key, float(value), now, step) for key, value in metrics.items()], step)

    @rank_zero_only
    def log_curve(self, key: str, values: list[float], update: int) -> None:
        """`values` as one metric over the steps 0, 1, ... (a curve MLflow draws), measured at update `update`: held
        and sent as the metrics of that update are (its steps are not updates)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._route([Metric(key, float(value), now, i) for i, value in enumerate(values)], update)

    def _route(self, batch: list, step: int) -> None:
        """Hold `batch`, the work of update `step`, until the checkpoint holding that work is registered."""
        with self.lock:
            if step >= self.last_sealed:
                self.held.append(batch)
            elif self.last_registered >= self.last_sealed:  # the work of a checkpoint Ray has registered
                self.outbox.put(batch)
            elif self.sealed and self.sealed[-1][0] == self.last_sealed:  # Lightning logs an update after the
                self.sealed[-1][1].append(batch)  # `on_train_batch_end` that reported a resume point at it
            else:
                self.sealed.append((self.last_sealed, [batch]))

    def seal(self, step: int) -> None:
        """A checkpoint at update `step` was reported: what was logged before it, and what is logged later for
        updates before it (Lightning logs an update after the callback that reported it), goes to MLflow once
        Ray has registered that checkpoint."""
        with self.lock:
            self.last_sealed = step
            if self.held:
                self.sealed.append((step, self.held))
                self.held = []

    def release(self, step: int) -> None:
        """Ray registered the checkpoint at update `step`: send what was sealed with it and those before it."""
        with self.lock:
            self.last_registered = max(self.last_registered, step)
            while self.sealed and self.sealed[0][0] <= step:
                for batch in self.sealed.popleft()[1]:
                    self.outbox.put(batch)
            self.lock.notify_all()

    def tag(self, key: str, value: str) -> None:
        """Tag the run (any rank), through the outbox: a tracking-server outage neither stalls nor fails training,
        and the tag arrives once the server answers (at the latest in the end of training's flush)."""
        from mlflow.entities import RunTag

        self.outbox.put([RunTag(key, value)])

    def unsent(self) -> dict:
        """What MLflow may not hold yet (queued in the outbox, sealed, held), as plain lists for a checkpoint; not
        the tags (a restarted worker tags again)."""
        from mlflow.entities import Metric

        with self.lock:
            queued = [b for b in self.outbox.queued() if isinstance(b[0], Metric)]
            batches = [*queued, *(b for _, sealed in self.sealed for b in sealed), *self.held]
        return {
            "run_id": self.tracked_run,
            "batches": [[[m.key, m.value, m.timestamp, m.step] for m in batch] for batch in batches],
        }

    @rank_zero_only
    def resend(self, unsent: dict) -> None:
        """Resumed from a checkpoint Ray registered, carrying `unsent`: send what it holds to the run it was logged
        in. That is this run, or, when the stage was run again after its driver was killed (the rerun tracks a new
        run), the killed driver's: each run ends with every metric of the work done in it (found by the fault
        campaign: metrics of the first updates, queued in a worker when the driver died, were lost)."""
        from mlflow.entities import Metric

        outbox = self.outbox
        if unsent["run_id"] != self.tracked_run:
            old_run = unsent["run_id"]
            outbox = self.earlier = MetricOutbox(lambda items: _send(self.client, old_run, items), self.outbox.notify)
        for batch in unsent["batches"]:
            outbox.put([Metric(*metric) for metric in batch])

    def _release_registered(self, registered) -> None:
        """Release each checkpoint's metrics as Ray registers it, and send them at once (a Tune trial that
        ASHA stops after this report is ended soon); ends with the queue (the run's end)."""
        while True:
            try:
                step = registered.get(timeout=1.0)
            except queue.Empty:
                continue
            except Exception:  # the queue's actor is gone: the run ended
                return
            self.release(step)
            self.outbox.flush(2.0)

    def finalize(self, status: str = "success") -> None:
        """Training ended. On success, once Ray has registered its last checkpoint, send everything still
        held: nothing will be redone. Otherwise (a failure, or a last checkpoint that is never registered
        because a peer died and the worker group restarts from an earlier one) send only what registered
        checkpoints hold. The run's owner ends the run (the train stage's `mlflow.start_run`, or the sweep's
        summary)."""
        with self.lock:
            done = status == "success" and self.lock.wait_for(
                lambda: not self.watching or self.last_registered >= self.last_sealed, self.register_timeout
            )
            if done:
                for _, batches in self.sealed:
                    for batch in batches:
                        self.outbox.put(batch)
                for batch in self.held:
                    self.outbox.put(batch)
                self.sealed.clear()
                self.held = []
        if self.earlier is not None:
            self.earlier.flush(self.flush_timeout)
        if unsent := self.outbox.flush(self.flush_timeout):
            self.outbox.notify(
                f"{unsent} metric batches not sent: the MLflow tracking server did not answer "
                f"within {self.flush_timeout:.0f} s of the end of training"
            )


def _send(client, run_id: str, items: list) -> None:
    """The outbox's queued items in one request: the metrics, each (key, step, time, value) once as MLflow requires
    (a backlog may hold one twice), and the tags."""
    from mlflow.entities import Metric

    metrics = {(m.key, m.step, m.timestamp, m.value): m for m in items if isinstance(m, Metric)}
    client.log_batch(run_id, metrics=list(metrics.values()), tags=[t for t in items if not isinstance(t, Metric)])
