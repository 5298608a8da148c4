"""MLflow store location and the provenance every run records (git commit, data version)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path


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


def data_version(corpus: str, data_dir: Path = Path("data")) -> str:
    """Content version of one raw corpus: `<corpus>-` + SHA-256 over its files' names and hashes.

    Models are comparable (promotion gate) only on the same data version; DVC pins the same
    bytes in `data.dvc`.
    """
    from seqforge.data.fetch import sha256

    files = sorted(p for p in (data_dir / corpus).rglob("*") if p.is_file())
    if not files:
        return "unknown"
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(data_dir)} {sha256(path)}\n".encode())
    return f"{corpus}-{digest.hexdigest()[:12]}"
