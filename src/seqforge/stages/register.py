"""Stage `register` of an experiment: log its exported model as a self-contained MLflow pyfunc on its training
run, register a version (tags, description) and point the alias at it."""

from __future__ import annotations

import json

import mlflow
from mlflow.exceptions import MlflowException

from seqforge.config.shared import load_config
from seqforge.core import paths
from seqforge.tasks.registry import load_task
from seqforge.tracking.client import TrackingError, first_line, setup_mlflow
from seqforge.tracking.versions import describe_version, register_model_dir, version_tags


def register_experiment(name: str) -> dict:
    """Log `models/<name>` as a pyfunc on its training run, register it, set the alias."""
    cfg = load_config()
    model_dir = paths.model_dir(name)
    meta = json.loads((model_dir / "model.json").read_text())
    report = json.loads(paths.metrics_file(name).read_text())
    task = load_task(meta["task"]["name"])
    decode, alias = task.decode, cfg.mlflow.registry_alias
    setup_mlflow(cfg.mlflow.experiment)
    description = describe_version(meta, task, report, decode)
    model_version = register_model_dir(
        model_dir,
        task,
        meta["run_id"],
        {"decode": decode.model_dump(), "serve": cfg.serve.model_dump()},
        version_tags(meta, task, report),
        description,
        alias,
    )
    try:
        mlflow.MlflowClient().set_tag(meta["run_id"], "mlflow.note.content", description)  # the run page's description
    except MlflowException as err:
        raise TrackingError(
            f"{task.model_name()} version {model_version} is registered as @{alias}, but its run's "
            f"description was not set ({first_line(err)})"
        ) from err
    record = {
        "name": task.model_name(),
        "version": model_version,
        "alias": alias,
        "run_id": meta["run_id"],
        "model_uri": f"models:/{task.model_name()}/{model_version}",
    }
    out = paths.REPORTS / name / "registered.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"registered {task.model_name()} version {model_version} as @{alias}")
    return record
