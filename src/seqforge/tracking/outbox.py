"""Training metrics sent to MLflow from a background thread, so the tracking server never stalls or
fails training: while it is unreachable the batches wait, in order, and are retried until it answers.

The trainer's thread only queues (`put`). When the oldest queued batch is older than `late_after`
seconds (seen as batches arrive or as sends fail), the outbox says once that the server is not
answering; the sending thread says when it is back.
`flush` (end of training) waits for the queue to drain, for at most its timeout.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class MetricOutbox:
    """An ordered queue of metric batches and the daemon thread that sends them with `send`."""

    def __init__(
        self,
        send: Callable[[list], None],
        notify: Callable[[str], None],
        late_after: float = 15.0,
        max_delay: float = 5.0,
        per_request: int = 50,
    ) -> None:
        self.send, self.notify, self.late_after, self.max_delay = send, notify, late_after, max_delay
        self.per_request = (
            per_request  # batches sent in one request (a backlog drains fast; MLflow takes 1,000 metrics)
        )
        self.pending: deque[tuple[float, list]] = deque()
        self.changed = threading.Condition()
        self.thread: threading.Thread | None = None
        self.late = False  # a "not answering" notice is out, its "back" notice is not

    def put(self, batch: list) -> None:
        """Queue one batch of metrics; never blocks on the server."""
        with self.changed:
            self.pending.append((time.monotonic(), batch))
            self.changed.notify_all()
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="mlflow-metrics", daemon=True)
                self.thread.start()
        self._say_if_late()

    def queued(self) -> list[list]:
        """The batches not sent yet, oldest first."""
        with self.changed:
            return [batch for _, batch in self.pending]

    def _say_if_late(self) -> None:
        """Say once that the server is not answering when the oldest queued batch has waited `late_after`
        seconds (checked as batches arrive and as sends fail: also when training logs nothing new)."""
        with self.changed:
            waited = time.monotonic() - self.pending[0][0] if self.pending else 0.0
            if self.late or waited < self.late_after:
                return
            self.late = True
            queued = len(self.pending)
        self.notify(
            f"MLflow tracking server not answering for {waited:.0f} s: training goes on, "
            f"{queued} metric batches kept and retried until it is back"
        )

    def flush(self, timeout: float) -> int:
        """Wait until every queued batch is sent, at most `timeout` seconds; the number still unsent."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.pending and (left := deadline - time.monotonic()) > 0:
                self.changed.wait(left)
            return len(self.pending)

    def _run(self) -> None:
        first = delay = min(1.0, self.max_delay)
        while True:
            with self.changed:
                while not self.pending:
                    self.changed.wait()
                batches = [batch for _, batch in itertools.islice(self.pending, self.per_request)]
            try:
                self.send([metric for batch in batches for metric in batch])
            except Exception as err:  # any failure to reach the server: keep the batch, try again
                log.warning("MLflow tracking server unreachable (%s): retrying in %.0f s", err, delay)
                self._say_if_late()
                time.sleep(delay)
                delay = min(2 * delay, self.max_delay)
                continue
            delay = first
            with self.changed:
                for _ in batches:
                    self.pending.popleft()
                self.changed.notify_all()
                back = self.late and not self.pending
                if back:
                    self.late = False
            if back:
                self.notify("MLflow tracking server back: every queued metric sent")
