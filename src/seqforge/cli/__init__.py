"""`seqforge` command line; each module adds its commands to `cli.app.app`."""

from __future__ import annotations

import os
import sys

from seqforge.cli import data, models, research, serving, stack, training  # noqa: F401  (commands register on import)
from seqforge.cli.app import _tracking, app
from seqforge.tracking.client import first_line


def main() -> None:  # pragma: no cover - console entry point
    """The `seqforge` command. An MLflow store that refuses or fails a request (wrong credentials: 401,
    a missing model) ends any command with one line, not a traceback."""
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        app()
    except MlflowException as err:
        sys.exit(f"seqforge: the MLflow store at {_tracking()} refused: {first_line(err, 500)}")
