"""MLflow store location and the provenance every run records (git commit, data version)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set, else the SQLite store `mlflow.db` at the repository root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(DEFAULT_DB).resolve()}"


def setup_mlflow(experiment: str) -> str:
    """Point MLflow at the project's store, create the experiment if needed; returns its id."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    location = None if uri.startswith("http") else Path(DEFAULT_ARTIFACTS).resolve().as_uri()
    return mlflow.create_experiment(experiment, artifact_location=location and f"{location}/{experiment}")


def git_commit() -> str:
    """HEAD commit, suffixed with `-dirty` when tracked files have uncommitted changes."""
    try:
        sha = subprocess.check_output(["git", "rev-parse", "HEAD"], text=True, stderr=subprocess.DEVNULL).strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], stderr=subprocess.DEVNULL).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def data_version(dvc_file: Path = Path("data.dvc")) -> str:
    """The content hash DVC pins the raw corpora with (`outs[0].md5` of `data.dvc`)."""
    try:
        outs = yaml.safe_load(dvc_file.read_text())["outs"][0]
    except (OSError, KeyError, TypeError, IndexError):
        return "unknown"
    return str(outs.get("md5", "unknown"))
