"""What a person sees while a model trains: one line per evaluation (each epoch's end, or every N updates),
and a progress bar within the epoch when the driver's stderr is a terminal.

Ray Train reports each epoch on its controller actor; :class:`EpochLines` (a Ray Train callback
there) sends a summary line through a Ray queue, and rank 0's `StepProgress` (a Lightning callback,
`seqforge.training.worker.step_progress`) sends its position in the epoch about once a second. :func:`printing`
shows both on the driver. Workers' own output and Ray's logs go to Ray's session folder, whose path is
printed once.

The controller imports this module to run `EpochLines`: it imports neither torch nor Lightning nor MLflow,
each of which would hold up every run's start by seconds (`bench/ray_start.py`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ray.train import UserCallback

from seqforge.core.durations import clock, guard_seconds


def epoch_line(name: str, metrics: dict, elapsed: float, cap: float | None, plan: dict | None = None) -> str:
    """`gru_bahdanau epoch 3 | train loss 3.12 | val loss 2.98 | val BLEU 21.4 | 6,512 tok/s | 0:04:10 | 0:15:50 left`;
    a plan evaluated every N updates (`plan`: `Plan.worker_view`) names the evaluation and the update instead:
    `gru_bahdanau evaluation 3/8, update 1,200/3,200 (epoch 2) | ...`."""
    epoch = int(metrics.get("epoch", 0)) + 1
    if plan and plan["eval_every"]:
        step = int(metrics.get("step", 0))
        every, updates = plan["eval_every"], int(metrics.get("planned_updates", plan["updates"]))  # as re-planned
        parts = [f"{name} evaluation {step // every}/{updates // every}, update {step:,}/{updates:,} (epoch {epoch})"]
    else:
        parts = [f"{name} epoch {epoch}"]
    for key, label, fmt in (
        ("train_loss_epoch", "train loss", ".3f"),
        ("val_loss", "val loss", ".3f"),
        ("val_bleu", "val BLEU", ".2f"),
        ("tokens_per_s", "tok/s", ",.0f"),
    ):
        if key in metrics:
            value = format(float(metrics[key]), fmt)
            parts.append(f"{value} {label}" if key == "tokens_per_s" else f"{label} {value}")
    parts.append(f"elapsed {clock(elapsed)}")
    if cap is not None:
        parts.append(f"{clock(max(cap - elapsed, 0))} left of the time cap")
    return " | ".join(parts)


class EpochLines(UserCallback):
    """Ray Train callback (runs on the controller): one summary line per reported epoch into `queue`."""

    def __init__(self, name: str, max_time: str | None, queue, plan: dict | None = None) -> None:
        self.name, self.cap, self.queue, self.plan = name, guard_seconds(max_time), queue, plan
        self.start = time.monotonic()

    def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
        if metrics and metrics[0] and not metrics[0].get("mid_epoch"):  # a resume point, not an evaluation
            self.queue.put(epoch_line(self.name, metrics[0], time.monotonic() - self.start, self.cap, self.plan))


@contextmanager
def printing(name: str, max_time: str | None, plan: dict | None = None) -> Iterator[tuple[EpochLines, object]]:
    """A Ray Train callback and the queue for rank 0's `StepProgress`; a driver thread shows what
    they send until the block ends (epoch lines on stdout; the bar on stderr, on a terminal only)."""
    import ray
    from ray.util.queue import Empty, Queue
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    queue = Queue(actor_options={"num_cpus": 0})
    done = threading.Event()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    interactive = bar.console.is_terminal

    def pump() -> None:
        task = None
        while not done.is_set() or not queue.empty():
            try:
                item = queue.get(timeout=0.5)
            except Empty:
                continue
            if isinstance(item, str):
                if task is not None:
                    bar.remove_task(task)
                    task = None
                bar.console.print(item, highlight=False) if interactive else print(item, flush=True)
            elif interactive:
                _, epoch, step, total = item
                if task is None:
                    task = bar.add_task(f"{name} epoch {epoch}", total=total)
                bar.update(task, completed=step, total=total, description=f"{name} epoch {epoch}")

    node = ray._private.worker._global_node  # None inside a Ray worker (a Tune trial)
    logs = node.get_logs_dir_path() if node is not None else "the Ray session's logs folder"
    print(
        f"{name}: training on Ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs); worker output and "
        f"Ray's logs: {logs}",
        file=sys.stderr,
        flush=True,
    )
    thread = threading.Thread(target=pump, daemon=True)
    if interactive:
        bar.start()
    thread.start()
    try:
        yield EpochLines(name, max_time, queue, plan), queue
    finally:
        done.set()
        thread.join(timeout=5)
        bar.stop()
        ray.kill(queue.actor)
