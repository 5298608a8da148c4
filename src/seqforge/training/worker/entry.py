"""Ray Train's per-worker function as a driver hands it to Ray: the loop, and Lightning with it, is imported in
the worker process only, so a driver (a train stage, a Tune trial) starts without them (4.5 s of a 45 s
smoke-size train stage on 2 cores)."""

from __future__ import annotations


def train_worker(config: dict) -> None:
    """Run `loop.train_worker` in this Ray Train worker."""
    from seqforge.training.worker.loop import train_worker as run

    run(config)
