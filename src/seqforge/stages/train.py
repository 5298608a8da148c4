"""Stage `train` of an experiment: an MLflow run with its parameters, data and tags, training on Ray Train
(`training.driver`), the exported model in `models/<experiment>/` and its learning curves."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from datasets import load_from_disk

from seqforge import paths
from seqforge.config.base import flatten
from seqforge.config.experiment import ExperimentCfg, load_experiment
from seqforge.config.shared import TrainCfg, load_config
from seqforge.corpora.registry import load_corpus
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.models.registry import build_model, count_parameters
from seqforge.tasks.base import TaskCfg
from seqforge.tasks.registry import load_task
from seqforge.tracking.client import (
    data_version,
    git_commit,
    log_dataset_inputs,
    metric_steps,
    setup_mlflow,
)
from seqforge.training.driver import fit_and_export

CURVE_METRICS = ("train_loss_epoch", "val_loss", "val_ppl", "val_bleu", "tokens_per_s", "lr", "clipped")


def train_experiment(name: str) -> Path:
    """Train experiment `name`; the exported model lands in `models/<name>/`."""
    import mlflow

    cfg, exp = load_config(), load_experiment(name)
    task = load_task(exp.task)
    train_cfg = exp.train_config(cfg.train)
    experiment_id = setup_mlflow(cfg.mlflow.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
        meta = track_run(exp, task, train_cfg, run.info.run_id, cfg.profile)
        ray_name = run_name(exp, task, train_cfg, meta["data_version"])
        fit_and_export(exp, task, train_cfg, meta, paths.model_dir(name), ray_name)
        write_curves(run.info.run_id, paths.curves_file(name))
    return paths.model_dir(name)


def track_run(exp: ExperimentCfg, task: TaskCfg, train_cfg: TrainCfg, run_id: str, profile: str) -> dict:
    """Log a training run's parameters, data inputs and tags to the active MLflow run; returns the metadata
    its exported model carries (`model.json`)."""
    import mlflow

    corpus = load_corpus(task.corpus)
    tokenizer = SubwordTokenizer.load(paths.tokenizer_file(exp.task))
    data_hash = data_version(corpus)
    src_vocab, tgt_vocab = tokenizer.vocab_size("source"), tokenizer.vocab_size("target")
    num_parameters = count_parameters(build_model(exp.model, src_vocab, tgt_vocab))
    mlflow.log_params(flatten({"experiment": exp.model_dump(exclude={"train"}),
                               "train": train_cfg.model_dump(),
                               "task": task.model_dump(exclude={"decode"}),
                               "model": {"num_parameters": num_parameters}}))
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
    mlflow.set_tags({
        "task": exp.task, "kind": task.kind, "experiment": exp.name, "arch": exp.model.arch, "profile": profile,
        "data_version": data_hash, "git_commit": meta["git_commit"], "corpus": corpus.name,
        "languages": f"{task.src_lang}-{task.tgt_lang}",
    })
    return meta


def run_name(exp: ExperimentCfg, task: TaskCfg, train_cfg: TrainCfg, data_hash: str) -> str:
    """Ray run name: the same inputs resume the same run; changed inputs start a new one."""
    key = json.dumps([exp.model_dump(), train_cfg.model_dump(), task.data.model_dump(),
                      task.tokenizer.model_dump(), data_hash], sort_keys=True)
    return f"{exp.name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def write_curves(run_id: str, out: Path) -> None:
    """Per-epoch learning curves from the MLflow run, as CSV for `dvc plots` (empty cells: not logged).
    An epoch is a step at which `val_loss` was logged (`metric_steps`: redone epochs count once)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    history = {m: metric_steps(client, run_id, m) for m in CURVE_METRICS}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", *CURVE_METRICS])
        for epoch, step in enumerate(sorted(history["val_loss"]), start=1):
            writer.writerow([epoch, *(history[m].get(step, "") for m in CURVE_METRICS)])
