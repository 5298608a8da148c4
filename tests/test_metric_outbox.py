"""The training-metrics outbox: a tracking-server outage neither blocks the trainer nor loses metrics."""

from __future__ import annotations

import threading
import time

from seqforge.tracking.outbox import MetricOutbox


class FlakyServer:
    """Refuses every request while `down` is set (like a stopped server: connection refused)."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.received: list = []

    def log_batch(self, batch: list) -> None:
        if self.down.is_set():
            raise ConnectionRefusedError("server down")
        self.received.extend(batch)


def test_an_outage_delays_metrics_in_order_and_loses_none() -> None:
    server, notices = FlakyServer(), []
    outbox = MetricOutbox(server.log_batch, notices.append, late_after=0.2, max_delay=0.05)
    outbox.put([0])
    assert outbox.flush(5) == 0 and server.received == [0]

    server.down.set()
    start = time.monotonic()
    for step in range(1, 30):
        outbox.put([step])
        time.sleep(0.02)
    assert time.monotonic() - start < 2  # the trainer never waited on the server
    assert outbox.flush(0.1) > 0 and server.received == [0]  # kept while the server is down
    assert len(notices) == 1 and "not answering" in notices[0]

    server.down.clear()
    assert outbox.flush(5) == 0
    assert server.received == list(range(30))  # every metric, in the order logged
    assert "back" in notices[-1] and len(notices) == 2


def test_an_outage_is_reported_though_nothing_more_is_logged() -> None:
    """Training that ends (or logs nothing) while the server is down still hears that it is down."""
    server, notices = FlakyServer(), []
    outbox = MetricOutbox(server.log_batch, notices.append, late_after=0.2, max_delay=0.05)
    server.down.set()
    outbox.put([0])  # the last batch: no later put to notice the wait
    assert outbox.flush(0.5) == 1 and len(notices) == 1 and "not answering" in notices[0]
    server.down.clear()
    assert outbox.flush(5) == 0 and server.received == [0] and "back" in notices[-1]
