"""The `resolve` stage: every stage's effective configuration, written once per task and experiment.

Stages read conf/ merged (base, profile overlays, templates, sweep winners). DVC cannot see those
merges, so this stage writes, for each task and experiment, exactly the values each stage reads
(`artifacts/config/tasks/<task>/<stage>.yaml`, `artifacts/config/experiments/<exp>/<stage>.yaml`),
and each stage depends on its file: a decoding change in a profile reruns evaluate and register
only, a model change reruns the trainings of that family only.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from seqforge.config.base import CONF_DIR
from seqforge.config.index import check_index
from seqforge.config.shared import load_config
from seqforge.core import paths
from seqforge.corpora.registry import load_corpus
from seqforge.experiments.config import experiment_names, load_experiment
from seqforge.tasks.registry import load_task, task_names

OUT = paths.ARTIFACTS / "config"


def task_stages(name: str, conf_dir: Path = CONF_DIR) -> dict[str, dict[str, Any]]:
    """What prepare and tokenize of task `name` read."""
    task = load_task(name, conf_dir)
    data_side = task.model_dump(mode="json", exclude={"tokenizer", "decode", "registered_name", *task.scoring})
    return {
        "prepare": {"task": data_side, "corpus": load_corpus(task.corpus, conf_dir).model_dump(mode="json")},
        "tokenize": {"tokenizer": task.tokenizer.model_dump(mode="json")},
    }


def experiment_stages(name: str, conf_dir: Path = CONF_DIR) -> dict[str, dict[str, Any]]:
    """What train, evaluate and register of experiment `name` read."""
    cfg = load_config(conf_dir)
    exp = load_experiment(name, conf_dir)
    task = load_task(exp.task, conf_dir)
    return {
        "train": {
            "experiment": exp.model_dump(mode="json"),
            "train": exp.train_config(cfg.train).model_dump(mode="json"),
            "task": task.model_dump(mode="json", exclude={"decode", "registered_name"}),
            "mlflow_experiment": cfg.mlflow.experiment,
            "profile": cfg.profile,
        },
        "evaluate": {
            "task": task.model_dump(mode="json", exclude={"tokenizer", "registered_name"}),
            "evaluate": cfg.evaluate.model_dump(mode="json"),
            "mlflow_experiment": cfg.mlflow.experiment,
        },
        "register": {
            "task": task.model_dump(mode="json", exclude={"tokenizer", "data", *task.scoring}),
            "serve": cfg.serve.model_dump(mode="json"),
            "mlflow": cfg.mlflow.model_dump(mode="json"),
        },
    }


def resolve_all(conf_dir: Path = CONF_DIR, out: Path = OUT) -> list[Path]:
    """Write every task's and experiment's stage configuration under `out` (only files that changed)."""
    check_index(conf_dir)
    wanted: dict[Path, dict] = {}
    for name in task_names(conf_dir):
        wanted.update({out / "tasks" / name / f"{stage}.yaml": v for stage, v in task_stages(name, conf_dir).items()})
    for name in experiment_names(conf_dir):
        wanted.update(
            {out / "experiments" / name / f"{stage}.yaml": v for stage, v in experiment_stages(name, conf_dir).items()}
        )
    for stale in {p for p in out.rglob("*.yaml")} - set(wanted) if out.is_dir() else ():
        stale.unlink()
    written = []
    for path, values in wanted.items():
        text = yaml.safe_dump(values, sort_keys=True, allow_unicode=True)
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    for folder in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True) if out.is_dir() else ():
        if not any(folder.iterdir()):
            shutil.rmtree(folder)
    return written


def run(_: str = "all") -> None:
    written = resolve_all()
    print(f"resolve: {len(written)} stage configuration{'s' * (len(written) != 1)} changed under {OUT}")
