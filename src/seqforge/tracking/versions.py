"""Model versions in MLflow's model registry: an exported model directory logged as a self-contained pyfunc on
its training run, registered as a new version (tags, description) only once every file is uploaded, and an
alias pointed at it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.artifacts import list_artifacts
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema

from seqforge.config.shared import DecodeCfg
from seqforge.core.digests import file_digests
from seqforge.models.registry import family
from seqforge.tasks.base import TaskCfg
from seqforge.tasks.registry import task_kind
from seqforge.tracking.client import TrackingError, first_line
from seqforge.tracking.pyfunc import DIGESTS, PACKAGE_DIR, requirements

MODEL_CODE = Path(__file__).with_name("model_code.py")  # the pyfunc as code: loading a version unpickles nothing


def describe_version(meta: dict, task: TaskCfg, report: dict, decode: DecodeCfg) -> str:
    """The model version's description (Markdown): architecture, data, test metrics, provenance."""
    metrics = " · ".join(f"{k} {v}" for k, v in report["metrics"].items())
    decoding = (
        f"beam {decode.beam_size}"
        if decode.strategy == "beam"
        else f"sampling (top-k {decode.top_k}, top-p {decode.top_p}, T {decode.temperature})"
    )
    return "\n".join(
        [
            f"**{meta['experiment']['name']}** ({task.name}, {task.kind}): "
            f"{family(meta['experiment']['model']['arch']).describe(meta['experiment']['model'])}; "
            f"{meta['num_parameters'] / 1e6:.2f}M parameters, best epoch {(meta['epoch'] or 0) + 1}.",
            "",
            f"- Data: `{meta['data_version']}` (corpus {task.corpus}, {task.src_lang} -> {task.tgt_lang}, "
            f"profile {meta['profile']}).",
            f"- Test ({report['metrics']['sentences']} pairs, {decoding}): {metrics}.",
            f"- Trained from git `{meta['git_commit']}`; run `{meta['run_id']}`.",
        ]
    )


def check_uploaded(info, model_dir: Path) -> None:
    """The logged model's `MLmodel` and every file of `model_dir` are in its artifact store, at their
    sizes, before any model version may point there."""

    def sizes(uri: str) -> dict[str, int]:
        """Files under `uri`, recursively, by path relative to it."""
        found: dict[str, int] = {}
        for item in list_artifacts(artifact_uri=uri):
            name = item.path.rsplit("/", 1)[-1]
            found |= (
                {f"{name}/{k}": v for k, v in sizes(f"{uri}/{name}").items()} if item.is_dir else {name: item.file_size}
            )
        return found

    root = mlflow.get_logged_model(info.model_id).artifact_location
    top = {item.path.rsplit("/", 1)[-1] for item in list_artifacts(artifact_uri=root)}
    uploaded = sizes(f"{root}/artifacts/{model_dir.name}")  # where pyfunc puts `artifacts={"model_dir": ...}`
    local = {str(p.relative_to(model_dir)): p.stat().st_size for p in model_dir.rglob("*") if p.is_file()}
    missing = [] if "MLmodel" in top else ["MLmodel"]
    missing += sorted(name for name, size in local.items() if uploaded.get(name) != size)
    if missing:
        raise TrackingError(
            f"the upload of {model_dir} to {root} is incomplete ({', '.join(missing)} missing or "
            "cut short): no model version registered"
        )


def _registered_model(client, name: str) -> bool:
    try:
        client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def version_tags(meta: dict, task: TaskCfg, report: dict) -> dict[str, str]:
    """A model version's tags: what the registry lists and the promotion gate compares (`test_*`, data version)."""
    return {
        "task": task.name,
        "kind": task.kind,
        "primary_metric": task_kind(task.kind).primary_metric,
        "languages": f"{task.src_lang}-{task.tgt_lang}",
        "experiment": meta["experiment"]["name"],
        "arch": meta["experiment"]["model"]["arch"],
        "data_version": meta["data_version"],
        "git_commit": meta["git_commit"],
        "profile": meta["profile"],
        "num_parameters": str(meta["num_parameters"]),
        **{f"test_{k}": str(v) for k, v in report["metrics"].items()},
        **({"undertrained": meta["undertrained"]} if meta.get("undertrained") else {}),
    }


def register_model_dir(
    model_dir: Path,
    task: TaskCfg,
    run_id: str,
    model_config: dict,
    tags: dict[str, str],
    description: str,
    alias: str,
    artifact: str = "model",
    extra_requirements: tuple = (),
) -> str:
    """Log `model_dir` as a self-contained pyfunc named `artifact` on run `run_id` (built from code, `MODEL_CODE`;
    with `model_config`: decoding settings and request limits; with `files.json`: the size and SHA-256 of each
    file of `model_dir`), register it as a new version of the task's model with `tags` and `description`, and
    point `alias` at it; returns the version. A `TrackingError` says what did not happen."""
    kind = task_kind(task.kind)
    model_name = task.model_name()
    try:
        with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as scratch:
            digests = Path(scratch, f"{DIGESTS}.json")
            digests.write_text(json.dumps(file_digests(model_dir), indent=1))
            info = mlflow.pyfunc.log_model(
                name=artifact,
                python_model=str(MODEL_CODE),
                artifacts={"model_dir": str(model_dir), DIGESTS: str(digests)},
                model_config=model_config,
                code_paths=[str(PACKAGE_DIR)],
                signature=ModelSignature(
                    inputs=Schema([kind.input_schema()]), outputs=Schema([ColSpec(DataType.string, kind.output_column)])
                ),
                input_example=pd.DataFrame({kind.input_column: kind.example()}),
                pip_requirements=requirements(*extra_requirements),
            )
    except (MlflowException, OSError) as err:  # requests errors are OSErrors
        raise TrackingError(
            f"logging {model_dir} as an MLflow model failed ({first_line(err)}): no model version registered"
        ) from err
    check_uploaded(info, model_dir)
    client = mlflow.MlflowClient()
    try:
        if not _registered_model(client, model_name):
            client.create_registered_model(
                model_name,
                description=f"{kind.description} Task `{task.name}` "
                f"({task.src_lang} -> {task.tgt_lang}, corpus {task.corpus}).",
            )
        # one call: a version exists complete (uploaded artifacts, tags, description) or not at all
        model_version = str(
            client.create_model_version(
                model_name, info.model_uri, run_id=run_id, tags=tags, description=description, model_id=info.model_id
            ).version
        )
    except MlflowException as err:
        raise TrackingError(
            f"registering {model_name} failed ({first_line(err)}): no model version registered"
        ) from err
    try:
        client.set_registered_model_alias(model_name, alias, model_version)
    except MlflowException as err:
        raise TrackingError(
            f"{model_name} version {model_version} is registered, but setting "
            f"@{alias} failed ({first_line(err)}): the alias still points where it did"
        ) from err
    return model_version
