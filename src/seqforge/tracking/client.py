"""MLflow store location and the provenance every run records (git commit, data version)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from seqforge.corpora.fetch import corpus_url, sha256
from seqforge.corpora.pins import pinned_md5
from seqforge.corpora.registry import CorpusCfg

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"


class TrackingError(Exception):
    """The MLflow tracking server or artifact store could not do what a stage needs (nothing half done)."""


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set, else the SQLite store `mlflow.db` at the repository root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(DEFAULT_DB).resolve()}"


def setup_mlflow(experiment: str) -> str:
    """Point MLflow at the project's store, create the experiment if needed; returns its id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
    except MlflowException as err:
        raise TrackingError(f"cannot use the MLflow tracking store at {uri}: {first_line(err)}") from None
    if found is not None:
        return found.experiment_id
    location = None if uri.startswith("http") else Path(DEFAULT_ARTIFACTS).resolve().as_uri()
    return mlflow.create_experiment(experiment, artifact_location=location and f"{location}/{experiment}")


def metric_steps(client, run_id: str, metric: str) -> dict[int, float]:
    """One metric of a run by step; a value logged twice at one step (an epoch redone after a worker
    restart) counts once, the later one."""
    return {h.step: h.value for h in sorted(client.get_metric_history(run_id, metric), key=lambda h: h.timestamp)}


def first_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message, first line only, at most `limit` characters (for one-line errors)."""
    text = str(getattr(err, "message", None) or err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:limit]


def git_commit() -> str:
    """HEAD commit, suffixed with `-dirty` when tracked files have uncommitted changes."""
    try:
        sha = subprocess.check_output(["git", "rev-parse", "HEAD"], text=True, stderr=subprocess.DEVNULL).strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], stderr=subprocess.DEVNULL).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def data_version(corpus: CorpusCfg, data_dir: Path = Path("data")) -> str:
    """Content version of one raw corpus: `<corpus>-` + SHA-256 over its files and how they are read
    (format, columns, held-out sizes and seed).

    Models are comparable (promotion gate) only on the same data version; DVC pins the same
    bytes in `data.dvc`.
    """
    files = sorted(p for p in (data_dir / corpus.name).rglob("*") if p.is_file())
    if not files:
        return "unknown"
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(data_dir)} {sha256(path)}\n".encode())
    reading = corpus.model_dump(include={"format", "columns", "header", "split", "seed"})
    if corpus.split:  # built-in corpora keep the version they always had
        digest.update(json.dumps(reading, sort_keys=True).encode())
    return f"{corpus.name}-{digest.hexdigest()[:12]}"


def dataset_source(corpus: CorpusCfg):
    """The MLflow dataset source of a corpus, named, not guessed: its official address (HTTP), else its folder as
    `data.dvc` pins it (`data/<corpus>`, relative: a hub name or the path `corpus add` read is no place to load
    from). From a bare string MLflow finds two equal candidates for a local path (its local artifact source is
    registered for the schemes '' and 'file') and warns on every train stage that it picked one."""
    from mlflow.data.dataset_source_registry import get_registered_sources
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    location = corpus_url(corpus)
    if location.startswith(("http://", "https://")):
        return HTTPDatasetSource(url=location)
    local = next(s for s in get_registered_sources() if s.__name__ == "LocalArtifactDatasetSource")
    return local(f"data/{corpus.name}")


def log_dataset_inputs(corpus: CorpusCfg, splits: dict, version: str) -> None:
    """Log each split (a `datasets.Dataset` with source/target text) as an input of the active run.

    The MLflow dataset is named `<corpus>-<split>` with context `<split>`, its source is the corpus's official
    address or its pinned folder (`dataset_source`), and its tags carry the corpus version and the md5 `data.dvc`
    pins for it.
    """
    import mlflow

    source = dataset_source(corpus)
    tags = {
        "data_version": version,
        "dvc_md5": pinned_md5(Path("data") / corpus.name),
        "dvc_path": f"data/{corpus.name}",
    }
    for split, dataset in splits.items():
        frame = dataset.select_columns(["source", "target"]).to_pandas()
        mlflow.log_input(
            mlflow.data.from_pandas(frame, source=source, name=f"{corpus.name}-{split}", targets="target"),
            context=split,
            tags=tags,
        )
