"""`conf/pipeline.yaml`: what dvc.yaml, sweeps/dvc.yaml and studies/dvc.yaml iterate over, generated from conf/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from seqforge.config.base import CONF_DIR, ConfigError, group_names, read_yaml

INDEX_FILE = "pipeline.yaml"


INDEX_HEADER = (
    "# Generated from conf/tasks/, conf/experiments/ and conf/tune/ by `seqforge sync` (also run by `seqforge task\n"
    "# add|remove`, `profile` and `fetch`): what dvc.yaml and sweeps/dvc.yaml iterate over. Do not edit by hand.\n"
)


def pipeline_index(conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """What the dvc.yaml files' `foreach` need: every task with its corpus, every experiment and every sweep
    (`conf/tune/<experiment>.yaml`) with its task."""
    tasks = {}
    for name in group_names(conf_dir / "tasks"):
        path = conf_dir / "tasks" / f"{name}.yaml"
        corpus = read_yaml(path).get("corpus")
        if not isinstance(corpus, str):
            raise ConfigError(f"{path}: corpus: a corpus name is required")
        tasks[name] = {"corpus": corpus}
    experiments = {}
    for name in group_names(conf_dir / "experiments"):
        path = conf_dir / "experiments" / f"{name}.yaml"
        task = read_yaml(path).get("task")
        if task not in tasks:
            raise ConfigError(f"{path}: task: no task {task!r} in {conf_dir / 'tasks'} (known: {', '.join(tasks)})")
        experiments[name] = {"task": task}
    sweeps = {}
    for name in group_names(conf_dir / "tune"):
        if name not in experiments:
            raise ConfigError(
                f"{conf_dir / 'tune' / name}.yaml: no experiment {name!r} to sweep "
                f"(experiments: {', '.join(experiments)})"
            )
        sweeps[name] = dict(experiments[name])
    return {"tasks": tasks, "experiments": experiments, "sweeps": sweeps}


def write_index(conf_dir: Path = CONF_DIR) -> bool:
    """Rewrite `conf/pipeline.yaml` from the conf groups; True when it changed."""
    path = conf_dir / INDEX_FILE
    text = INDEX_HEADER + yaml.safe_dump(pipeline_index(conf_dir), sort_keys=False)
    if path.is_file() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def check_index(conf_dir: Path = CONF_DIR) -> None:
    """Fail unless `conf/pipeline.yaml` lists exactly the tasks and experiments conf/ defines."""
    path = conf_dir / INDEX_FILE
    current = read_yaml(path) if path.is_file() else {}
    wanted = pipeline_index(conf_dir)
    if current != wanted:
        diff = [
            f"{group} {name}" for group in wanted for name in sorted(set(wanted[group]) ^ set(current.get(group) or {}))
        ] or ["its entries"]
        raise ConfigError(f"{path} is out of date with conf/ ({', '.join(diff)}): run `seqforge sync`")
