"""`seqforge` command line: fetch corpora, add your own, train through DVC, translate or chat with a registered
model, manage versions, run the team stack."""

from __future__ import annotations

import typer

from seqforge.tracking.client import tracking_uri

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _fail(command: str, err: Exception) -> typer.Exit:
    """One error line on stderr (no traceback) and exit status 1."""
    typer.echo(f"{command}: {err}", err=True)
    return typer.Exit(1)


def _tracking() -> str:
    return tracking_uri()


def _client():
    import mlflow

    mlflow.set_tracking_uri(_tracking())
    return mlflow.MlflowClient()
