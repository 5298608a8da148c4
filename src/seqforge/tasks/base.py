"""What every task kind has: the `conf/tasks/<name>.yaml` fields all kinds share, and the interface a kind
implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from datasets import DatasetDict
from pydantic import Field

from seqforge.config.base import Name, Strict
from seqforge.config.shared import DecodeCfg, ServeCfg, TokenizerCfg
from seqforge.corpora.registry import CorpusCfg


class DataCfg(Strict):
    """The `data:` keys every kind has (each kind extends it)."""

    normalization: Literal["nfc", "nfkc"] = "nfc"  # Unicode form applied to every text (NFKC folds width variants)
    max_train_pairs: int | None = Field(None, gt=0)  # keep only the first N training pairs (smoke runs)
    max_eval_pairs: int | None = Field(None, gt=0)  # cap on validation/test pairs (smoke runs)


class TaskCfg(Strict):
    """What every task has: its corpus, tokenizer, and how evaluation and serving decode."""

    kind: str  # each kind narrows it to `Literal["<kind>"]` (tasks.registry tells kinds apart by it)
    name: Name  # the file's name
    corpus: Name  # the raw corpus it reads (conf/corpora/<corpus>.yaml)
    registered_name: str | None = None  # the MLflow model name; default: the task name
    tokenizer: TokenizerCfg = TokenizerCfg()
    decode: DecodeCfg = DecodeCfg()
    scoring: ClassVar[frozenset[str]] = frozenset()  # fields only scoring reads (not prepare, tokenize or register)

    def model_name(self) -> str:
        """The registered model's name."""
        return self.registered_name or self.name


class RequestError(ValueError):
    """A request the model cannot take (bad type, over a limit); the message names the row."""


class TaskKind(ABC):
    """Pairs, metrics, model selection and serving contract of one kind of task."""

    name: ClassVar[str]
    config: ClassVar[type[TaskCfg]]  # the schema of its `conf/tasks/<name>.yaml` (`kind: Literal[name]`)
    monitor: ClassVar[tuple[str, str]]  # validation metric for early stopping and checkpoints, and its mode
    primary_metric: ClassVar[str]  # test metric that decides promotion (a model-version tag)
    shown_metrics: ClassVar[tuple[str, ...]]  # what `evaluate` prints
    input_column: ClassVar[str]
    output_column: ClassVar[str]
    description: ClassVar[str]  # the registered model's description
    templates: ClassVar[tuple[str, ...]]  # experiment templates `seqforge task add` uses unless told

    @abstractmethod
    def languages(
        self, corpus: CorpusCfg, src: str | None, tgt: str | None, keys: tuple[str, str] = ("--src", "--tgt")
    ) -> dict[str, str]:
        """The task file's language keys for `src`/`tgt`, checked against `corpus` (`task add`, and `prepare`
        again); a `ValueError` names the wrong one by `keys` (the options, or the file's keys)."""

    @abstractmethod
    def pairs(self, rows: pa.Table, task: Any, corpus: CorpusCfg, scratch: Path) -> tuple[DatasetDict, dict]:
        """Reader rows -> `DatasetDict(train, validation, test)` of (source, target) text (Arrow files
        under `scratch`), and statistics."""

    def validation_bleu(self, task: Any) -> str | None:
        """The sacreBLEU tokenizer of the per-epoch validation BLEU, where the kind selects on BLEU."""
        return None

    @abstractmethod
    def scores(self, hyps: list[str], refs: list[str], task: dict) -> dict:
        """Test metrics of `hyps` against `refs`, with a `signature` entry (how they were computed)."""

    @abstractmethod
    def requests(self, values: list, limits: ServeCfg) -> list:
        """The `input_column` values of a request, checked; a `RequestError` names the bad row."""

    @abstractmethod
    def sources(self, requests: list, meta: dict) -> list[str]:
        """Checked requests -> the source strings the model was trained on (same cleaning as prepare)."""

    def input_schema(self):
        """MLflow column spec of the input (a string column unless the kind says otherwise)."""
        from mlflow.types import ColSpec, DataType

        return ColSpec(DataType.string, self.input_column)

    @abstractmethod
    def example(self) -> list:
        """One input value for the registered model's input example."""


def checked_texts(values: list, limits: ServeCfg, what: str) -> list[str]:
    """`values` if every one is a string within `limits.max_chars`, else a `RequestError` naming the first bad one."""
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise RequestError(f"{what} {i}: expected a string, got {type(value).__name__} {value!r:.80}")
        if len(value) > limits.max_chars:
            raise RequestError(f"{what} {i}: {len(value)} characters, more than the limit of {limits.max_chars}")
    return values
