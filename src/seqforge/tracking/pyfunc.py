"""The MLflow pyfunc every registered version is: an exported model, its decoding settings and request limits."""

from __future__ import annotations

import json
import threading
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, INVALID_STATE

from seqforge.config.shared import DecodeCfg, ServeCfg
from seqforge.core.digests import differences
from seqforge.tasks.base import RequestError
from seqforge.tasks.registry import task_kind

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/seqforge: carried in the model as its code
DIGESTS = "files"  # the pyfunc's artifact holding the size and SHA-256 of every file of the model directory


def invalid_input(message: str) -> MlflowException:
    """A request error: MLflow's scoring server answers it with HTTP 400 and this message."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def check_digests(model_dir: Path, registered: dict[str, dict]) -> None:
    """Refuse a model directory whose files are not, byte for byte, the ones registered (`file_digests`)."""
    if differ := differences(model_dir, registered):
        raise MlflowException(
            f"{model_dir}: {'; '.join(differ)}: not as registered, refusing to load this version",
            error_code=INVALID_STATE,
        )


class Seq2SeqModel(mlflow.pyfunc.PythonModel):
    """pyfunc for any task: a DataFrame with the kind's input column -> one with its output column
    (translation: `source` -> `translation`; chatbot: `conversation` (turns, newest last) -> `reply`).

    Loads the exported model with the decoding settings and request limits it was registered with, once its files
    match the digests recorded then (`files.json`; versions registered before digests were recorded load unchecked).
    """

    def load_context(self, context) -> None:
        from seqforge.inference.predictor import Predictor

        if DIGESTS in context.artifacts:
            registered = json.loads(Path(context.artifacts[DIGESTS]).read_text())
            check_digests(Path(context.artifacts["model_dir"]), registered)
        self.lock = threading.Lock()  # the scoring server predicts in threads: one decode at a time
        self.limits = ServeCfg.model_validate(context.model_config["serve"])
        self.predictor = Predictor.load(
            context.artifacts["model_dir"], DecodeCfg.model_validate(context.model_config["decode"])
        )
        self.kind = task_kind(self.predictor.meta["kind"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return pd.DataFrame({self.kind.output_column: self.decode(self.source_ids(model_input))})

    def source_ids(self, model_input: pd.DataFrame) -> list[list[int]]:
        """A request's rows checked and tokenised; a bad one is `invalid_input` (HTTP 400) for this request alone."""
        column = self.kind.input_column
        if column not in model_input.columns:
            raise invalid_input(f"missing input column {column!r} (got {list(model_input.columns)})")
        if len(model_input) > self.limits.max_batch:
            raise invalid_input(
                f"{len(model_input)} rows in one request, more than the limit of {self.limits.max_batch}"
            )
        try:
            requests = self.kind.requests(model_input[column].tolist(), self.limits)
            return self.predictor.request_ids(requests, self.limits.max_tokens)
        except RequestError as err:
            raise invalid_input(str(err)) from None

    def decode(self, src_ids: list[list[int]]) -> list[str]:
        """Outputs of checked rows, one decode at a time (MLflow's scoring server predicts in threads). A Ray Serve
        replica puts its batcher here (`serving.ray_app`): the rows of requests that arrive together decode as one."""
        with self.lock:
            return self.predictor.outputs(src_ids)


def requirements(*extra: str) -> list[str]:
    """The pinned packages a served model installs (`extra`: its backend's, e.g. ctranslate2)."""
    pkgs = [
        "torch",
        "tokenizers",
        "sentencepiece",
        "datasets",
        "pyarrow",
        "sacrebleu",
        "sacremoses",
        "pydantic",
        "pyyaml",
        "pandas",
        "mlflow",
        *extra,
    ]
    return [f"{p}=={version(p).split('+')[0]}" for p in pkgs]
