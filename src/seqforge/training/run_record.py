"""What a training run records: its parameters, data inputs and tags on the active MLflow run, the metadata its
exported model carries (`model.json`), and the Ray run name that its inputs decide (the same inputs resume the
same run)."""

from __future__ import annotations

import hashlib
import json

import mlflow
from datasets import load_from_disk

from seqforge.config.base import flatten
from seqforge.config.shared import TrainCfg
from seqforge.core import paths
from seqforge.corpora.registry import load_corpus
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.experiments.config import ExperimentCfg
from seqforge.models.registry import build_model, count_parameters
from seqforge.tasks.base import TaskCfg
from seqforge.tracking.client import data_version, git_commit, log_dataset_inputs


def track_run(
    exp: ExperimentCfg, task: TaskCfg, train_cfg: TrainCfg, run_id: str, profile: str, data_hash: str | None = None
) -> dict:
    """Log a training run's parameters, data inputs and tags to the active MLflow run; returns the metadata
    its exported model carries (`model.json`). `data_hash`: the corpus's `data_version`, if known."""
    corpus = load_corpus(task.corpus)
    tokenizer = SubwordTokenizer.load(paths.tokenizer_file(exp.task))
    data_hash = data_hash or data_version(corpus)
    src_vocab, tgt_vocab = tokenizer.vocab_size("source"), tokenizer.vocab_size("target")
    num_parameters = count_parameters(build_model(exp.model, src_vocab, tgt_vocab))
    mlflow.log_params(
        flatten(
            {
                "experiment": exp.model_dump(exclude={"train"}),
                "train": train_cfg.model_dump(),
                "task": task.model_dump(exclude={"decode"}),
                "model": {"num_parameters": num_parameters},
            }
        )
    )
    log_dataset_inputs(corpus, load_from_disk(str(paths.tokenized_dir(exp.task))), data_hash)
    meta = {
        "experiment": exp.model_dump(mode="json"),
        "src_vocab": src_vocab,
        "tgt_vocab": tgt_vocab,
        "num_parameters": num_parameters,
        "kind": task.kind,
        "task": task.model_dump(mode="json"),
        "corpus_format": corpus.format,
        "run_id": run_id,
        "data_version": data_hash,
        "git_commit": git_commit(),
        "profile": profile,
    }
    mlflow.set_tags(
        {
            "task": exp.task,
            "kind": task.kind,
            "experiment": exp.name,
            "arch": exp.model.arch,
            "profile": profile,
            "data_version": data_hash,
            "git_commit": meta["git_commit"],
            "corpus": corpus.name,
            "languages": f"{task.src_lang}-{task.tgt_lang}",
        }
    )
    return meta


def run_name(exp: ExperimentCfg, task: TaskCfg, train_cfg: TrainCfg, data_hash: str) -> str:
    """Ray run name: the same inputs resume the same run; changed inputs start a new one."""
    key = json.dumps(
        [exp.model_dump(), train_cfg.model_dump(), task.data.model_dump(), task.tokenizer.model_dump(), data_hash],
        sort_keys=True,
    )
    return f"{exp.name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
