"""Commands for research runs: tune (a Ray Tune sweep), study (the classic-claims study)."""

from __future__ import annotations

from typing import Annotated

import typer

from seqforge.cli.app import _fail, app
from seqforge.config.base import ConfigError
from seqforge.corpora.base import CorpusError
from seqforge.tracking.client import TrackingError


@app.command()
def tune(
    experiment: Annotated[str, typer.Argument(help="experiment to sweep; the space is conf/tune/<experiment>.yaml")],
    num_samples: Annotated[int | None, typer.Option(min=1, help="trials (default: the sweep file's)")] = None,
    resume: Annotated[
        bool, typer.Option(help="continue the interrupted sweep: finished trials stay, errored ones rerun")
    ] = False,
) -> None:
    """Sweep an experiment on the Ray cluster ($RAY_ADDRESS, else local) and write the winner to conf/tuned/."""
    from seqforge.experiments.config import tuned_file
    from seqforge.research.tune import run_sweep

    try:
        summary = run_sweep(experiment, num_samples=num_samples, resume=resume)
    except (ConfigError, RuntimeError) as err:  # bad sweep file, nothing to resume, no trial succeeded
        typer.echo(f"tune: {err}", err=True)
        raise typer.Exit(1) from None
    best, counts = summary["best"], summary["counts"]
    typer.echo(
        f"{summary['sweep']}: {sum(counts.values())} trials ({counts['completed']} completed, "
        f"{counts['stopped_early']} stopped early, {counts['failed']} failed); best {summary['metric']} "
        f"{best['value']:.4g} (trial {best['trial_id']}) -> {tuned_file(experiment)}"
    )


@app.command()
def study(
    name: Annotated[
        str,
        typer.Option(
            "--study",
            help="classic (conf/study.yaml, Multi30k) or long (conf/study_long.yaml, the synthetic long-range task)",
        ),
    ] = "classic",
    report_only: Annotated[
        bool, typer.Option(help="rewrite the report from the study's metrics file; no training")
    ] = False,
) -> None:
    """Measure the classic claims: train every model of the study, write metrics/<study>.json and reports/<study>/."""
    from seqforge.research.study import outputs, rewrite_report, run_study
    from seqforge.research.study_config import STUDIES

    if name not in STUDIES:
        raise _fail("study", ValueError(f"--study: no study {name!r} (studies: {', '.join(STUDIES)})"))
    try:
        summary = rewrite_report(name) if report_only else run_study(name)
    except (ConfigError, CorpusError, TrackingError, FileNotFoundError) as err:
        raise _fail("study", err) from None
    for claim in summary["claims"]:
        typer.echo(f"[{claim['verdict']}] {claim['claim']}\n    {claim['measured']}")
    report_dir, summary_file = outputs(name)
    typer.echo(
        f"{summary['study']}: {len(summary['models'])} models in {summary['wall_seconds'] / 60:.1f} min -> "
        f"{summary_file}, {report_dir / 'README.md'}"
    )
