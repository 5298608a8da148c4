"""Commands about training runs before they start: plan."""

from __future__ import annotations

from typing import Annotated

import typer

from seqforge.cli.app import _fail, app
from seqforge.config.base import ConfigError
from seqforge.config.index import pipeline_index
from seqforge.config.shared import load_config
from seqforge.core import paths
from seqforge.core.durations import clock


@app.command()
def plan(task: Annotated[str | None, typer.Argument(help="a task in conf/tasks/; all tasks when omitted")] = None) -> None:
    """Each experiment's training plan, without training: corpus size, updates per epoch, planned updates
    and epochs, evaluations, and the time it takes at this machine's measured step rate."""
    print_plans(task, "plan")


def tokenize_now(task: str, command: str) -> None:
    """`dvc repro tokenize@TASK` (and the stages before it), its output shown as it runs."""
    import subprocess
    import sys
    import time

    start = time.monotonic()
    sys.stdout.flush()
    if subprocess.run([paths.DVC, "repro", f"tokenize@{task}"], check=False).returncode:
        raise _fail(command, RuntimeError(f"dvc repro tokenize@{task} failed (its error is above); the task's files "
                                          f"are written: fix the cause, then `dvc repro tokenize@{task}` and "
                                          f"`seqforge plan {task}`"))
    typer.echo(f"prepared and tokenized {task} (dvc repro tokenize@{task}, {time.monotonic() - start:.0f} s)")


def print_plans(task: str | None, command: str) -> None:
    """The plans of `task`'s experiments (all tasks: None) as a table; a task not tokenized yet is one line."""
    from rich.console import Console
    from rich.table import Table

    from seqforge.experiments.config import load_experiment
    from seqforge.tasks.registry import load_task
    from seqforge.training.budget.plan import PlanError, plan_experiment

    try:
        index = pipeline_index()
        if task is not None and task not in index["tasks"]:
            raise ConfigError(f"no task {task!r} in conf/tasks/ (tasks: {', '.join(index['tasks'])})")
        names = [e for e, entry in index["experiments"].items() if task in (None, entry["task"])]
        base = load_config().train
        plans = []
        for name in names:
            exp = load_experiment(name)
            plans.append(plan_experiment(exp, load_task(exp.task), exp.train_config(base)))
    except (ConfigError, PlanError) as err:
        raise _fail(command, err) from None
    table = Table(title="training plans on this machine")
    for col in ("experiment", "budget", "pairs", "updates/epoch", "updates", "epochs", "evaluate every",
                "s/update", "estimated", "guard", "rate from"):
        table.add_column(col)
    for p in plans:
        cut = p.guard_cut()
        table.add_row(p.experiment, f"{p.unit} {p.setting}", f"{p.pairs:,}", f"{p.updates_per_epoch:,}",
                      f"{p.updates:,}", f"{p.epochs:.1f}", f"{p.eval_every:,} updates" if p.eval_every else "epoch",
                      f"{p.seconds_per_update:.3f}", clock(p.estimated_s),
                      "" if p.guard_s is None else clock(p.guard_s) + (f" (cuts at {cut:.0%})" if cut else ""),
                      p.rate_source)
    Console(width=200).print(table)
