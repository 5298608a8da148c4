"""Package an exported model as a self-contained MLflow pyfunc and register it under an alias."""

from __future__ import annotations

import json
import threading
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, DataType, Schema

from seqforge import paths
from seqforge.config import DecodeCfg, ServeCfg, TaskCfg, load_config, load_task
from seqforge.tasks import task_kind
from seqforge.tasks.base import RequestError
from seqforge.tracking import setup_mlflow

PACKAGE_DIR = Path(__file__).resolve().parent


def invalid_input(message: str) -> MlflowException:
    """A request error: MLflow's scoring server answers it with HTTP 400 and this message."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class Seq2SeqModel(mlflow.pyfunc.PythonModel):
    """pyfunc for any task: a DataFrame with the kind's input column -> one with its output column
    (translation: `source` -> `translation`; chatbot: `conversation` (turns, newest last) -> `reply`).

    Loads the exported model with the decoding settings and request limits it was registered with.
    """

    def load_context(self, context) -> None:
        from seqforge.predictor import Predictor

        self.lock = threading.Lock()  # the scoring server predicts in threads: one decode at a time
        self.limits = ServeCfg.model_validate(context.model_config["serve"])
        self.predictor = Predictor.load(
            context.artifacts["model_dir"], DecodeCfg.model_validate(context.model_config["decode"])
        )
        self.kind = task_kind(self.predictor.meta["kind"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        column = self.kind.input_column
        if column not in model_input.columns:
            raise invalid_input(f"missing input column {column!r} (got {list(model_input.columns)})")
        if len(model_input) > self.limits.max_batch:
            raise invalid_input(f"{len(model_input)} rows in one request, more than the limit of {self.limits.max_batch}")
        try:
            requests = self.kind.requests(model_input[column].tolist(), self.limits)
            with self.lock:
                replies = self.predictor.predict(requests, max_tokens=self.limits.max_tokens)
        except RequestError as err:
            raise invalid_input(str(err)) from None
        return pd.DataFrame({self.kind.output_column: replies})


def _requirements() -> list[str]:
    pkgs = ["torch", "tokenizers", "sentencepiece", "datasets", "pyarrow", "sacrebleu", "sacremoses", "pydantic",
            "pyyaml", "pandas", "mlflow"]
    return [f"{p}=={version(p).split('+')[0]}" for p in pkgs]


def architecture(model: dict) -> str:
    """One line describing a model config, e.g. `bidirectional GRU, 1+1 layers, bahdanau attention`."""
    if model["arch"] == "transformer":
        return (f"Transformer, {model['enc_layers']}+{model['dec_layers']} layers, d_model {model['d_model']}, "
                f"{model['heads']} heads, FFN {model['ffn_dim']}")
    direction = "bidirectional " if model["bidirectional"] else ""
    return (f"{direction}{model['cell'].upper()} encoder-decoder, {model['enc_layers']}+{model['dec_layers']} "
            f"layers, hidden {model['hidden_dim']}, embeddings {model['emb_dim']}, {model['attention']} attention")


def describe_version(meta: dict, task: TaskCfg, report: dict, decode: DecodeCfg) -> str:
    """The model version's description (Markdown): architecture, data, test metrics, provenance."""
    metrics = " · ".join(f"{k} {v}" for k, v in report["metrics"].items())
    decoding = (f"beam {decode.beam_size}" if decode.strategy == "beam"
                else f"sampling (top-k {decode.top_k}, top-p {decode.top_p}, T {decode.temperature})")
    return "\n".join([
        f"**{meta['experiment']['name']}** ({task.name}, {task.kind}): "
        f"{architecture(meta['experiment']['model'])}; "
        f"{meta['num_parameters'] / 1e6:.2f}M parameters, best epoch {(meta['epoch'] or 0) + 1}.",
        "",
        f"- Data: `{meta['data_version']}` (corpus {task.corpus}, {task.src_lang} -> {task.tgt_lang}, "
        f"profile {meta['profile']}).",
        f"- Test ({report['metrics']['sentences']} pairs, {decoding}): {metrics}.",
        f"- Trained from git `{meta['git_commit']}`; run `{meta['run_id']}`.",
    ])


def register_experiment(name: str) -> dict:
    """Log `models/<name>` as a pyfunc on its training run, register it, set the alias."""
    cfg = load_config()
    model_dir = paths.model_dir(name)
    meta = json.loads((model_dir / "model.json").read_text())
    report = json.loads(paths.metrics_file(name).read_text())
    task = load_task(meta["task"]["name"])
    kind = task_kind(task.kind)
    decode = task.decode
    model_name = task.model_name()
    setup_mlflow(cfg.mlflow.experiment)
    with mlflow.start_run(run_id=meta["run_id"]):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=Seq2SeqModel(),
            artifacts={"model_dir": str(model_dir)},
            model_config={"decode": decode.model_dump(), "serve": cfg.serve.model_dump()},
            code_paths=[str(PACKAGE_DIR)],
            signature=ModelSignature(inputs=Schema([kind.input_schema()]),
                                     outputs=Schema([ColSpec(DataType.string, kind.output_column)])),
            input_example=pd.DataFrame({kind.input_column: kind.example()}),
            pip_requirements=_requirements(),
            registered_model_name=model_name,
        )
    client = mlflow.MlflowClient()
    model_version = str(info.registered_model_version)
    tags = {
        "task": task.name,
        "kind": task.kind,
        "primary_metric": kind.primary_metric,
        "languages": f"{task.src_lang}-{task.tgt_lang}",
        "experiment": name,
        "arch": meta["experiment"]["model"]["arch"],
        "data_version": meta["data_version"],
        "git_commit": meta["git_commit"],
        "profile": meta["profile"],
        "num_parameters": str(meta["num_parameters"]),
        **{f"test_{k}": str(v) for k, v in report["metrics"].items()},
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, model_version, key, value)
    description = describe_version(meta, task, report, decode)
    client.update_model_version(model_name, model_version, description)
    client.set_tag(meta["run_id"], "mlflow.note.content", description)  # the run page's description
    if not client.get_registered_model(model_name).description:
        client.update_registered_model(model_name, f"{kind.description} Task `{task.name}` "
                                                   f"({task.src_lang} -> {task.tgt_lang}, corpus {task.corpus}).")
    client.set_registered_model_alias(model_name, cfg.mlflow.registry_alias, model_version)
    record = {"name": model_name, "version": model_version, "alias": cfg.mlflow.registry_alias,
              "run_id": meta["run_id"], "model_uri": info.model_uri}
    out = paths.REPORTS / name / "registered.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"registered {model_name} version {model_version} as @{cfg.mlflow.registry_alias}")
    return record
