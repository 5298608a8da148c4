"""Commands about training runs before they start: plan."""

from __future__ import annotations

from typing import Annotated

import typer

from seqforge.cli.app import _fail, app
from seqforge.cli.output import AsJson, show
from seqforge.config.base import ConfigError
from seqforge.config.index import pipeline_index
from seqforge.config.shared import load_config
from seqforge.core import paths
from seqforge.core.durations import clock


@app.command()
def plan(
    task: Annotated[str | None, typer.Argument(help="a task in conf/tasks/; all tasks when omitted")] = None,
    as_json: AsJson = False,
) -> None:
    """Each experiment's training plan, without training: corpus size, updates per epoch, planned updates
    and epochs, evaluations, and the time it takes at this machine's measured step rate."""
    print_plans(task, "plan", as_json)


def tokenize_now(task: str, command: str) -> None:
    """`dvc repro tokenize@TASK` (and the stages before it), its output shown as it runs."""
    import subprocess
    import sys
    import time

    start = time.monotonic()
    sys.stdout.flush()
    if subprocess.run([paths.DVC, "repro", f"tokenize@{task}"], check=False).returncode:
        raise _fail(
            command,
            RuntimeError(
                f"dvc repro tokenize@{task} failed (its error is above); the task's files "
                f"are written: fix the cause, then `dvc repro tokenize@{task}` and "
                f"`seqforge plan {task}`"
            ),
        )
    typer.echo(f"prepared and tokenized {task} (dvc repro tokenize@{task}, {time.monotonic() - start:.0f} s)")


def print_plans(task: str | None, command: str, as_json: bool = False) -> None:
    """The plans of `task`'s experiments (all tasks: None) as a table or JSON; a task not tokenized yet is one line."""
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
    rows = []
    for p in plans:
        cut = p.guard_cut()
        rows.append(
            {
                "experiment": p.experiment,
                "budget": f"{p.unit} {p.setting}",
                "pairs": f"{p.pairs:,}",
                "updates/epoch": f"{p.updates_per_epoch:,}",
                "updates": f"{p.updates:,}",
                "epochs": f"{p.epochs:.1f}",
                "evaluate every": f"{p.eval_every:,} updates" if p.eval_every else "epoch",
                "s/update": f"{p.seconds_per_update:.3f}",
                "estimated": clock(p.estimated_s),
                "guard": "" if p.guard_s is None else clock(p.guard_s) + (f" (cuts at {cut:.0%})" if cut else ""),
                "rate from": p.rate_source,
            }
        )
    show("training plans on this machine", rows, as_json, data=[p.as_dict() for p in plans])
