"""An experiment: a task, a model of a registered family, optimiser and train overrides; loading applies its
template, the profile's overlay for its family and a sweep winner."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pydantic import create_model

from seqforge.config.base import (
    CONF_DIR,
    ConfigError,
    Name,
    Strict,
    active_profile,
    group_file,
    group_names,
    merge,
    nest,
    profile_overlay,
    read_yaml,
    validate,
)
from seqforge.config.shared import OptimCfg, TrainCfg, layered_train
from seqforge.models.base import FamilyCfg
from seqforge.models.registry import FAMILIES, model_union


class ExperimentCfg(Strict):
    """`conf/experiments/<name>.yaml`: one model of a registered family trained on a task (validate with
    `experiment_schema()`, which knows the registered families)."""

    name: Name  # the file's name
    task: Name  # the task it trains on (conf/tasks/<task>.yaml)
    template: Name | None = None  # the experiment file this one extends (`seqforge task add`)
    model: FamilyCfg  # validated as the family `model.arch` names (models.registry)
    optim: OptimCfg = OptimCfg()
    train: dict[str, Any] = {}  # overrides of conf/config.yaml `train` for this experiment
    tuned_from: str | None = None  # MLflow run id of the sweep whose winner conf/tuned/<name>.yaml holds

    def train_config(self, base: TrainCfg) -> TrainCfg:
        """The global train settings with this experiment's overrides applied (validated)."""
        return validate(TrainCfg, layered_train(base.model_dump(), self.train), f"experiment {self.name}: train")


def overlay(data: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`merge`, with the `train` sections layered (`layered_train`: a plan unit replaces the ones below)."""
    merged = merge(data, over)
    if isinstance(data.get("train"), dict) and isinstance(over.get("train"), dict):
        merged["train"] = layered_train(data["train"], over["train"])
    return merged


@cache
def _schema(configs: tuple[type[FamilyCfg], ...]) -> type[ExperimentCfg]:
    return create_model("ExperimentCfg", __base__=ExperimentCfg, __module__=__name__, model=(model_union(configs), ...))


def experiment_schema() -> type[ExperimentCfg]:
    """`ExperimentCfg` whose `model` is the union of the families registered now (one class per set of families)."""
    return _schema(tuple(cls.config for cls in FAMILIES.values()))


def tuned_file(name: str, conf_dir: Path = CONF_DIR) -> Path:
    """`conf/tuned/<name>.yaml`: the best configuration a sweep found (`seqforge tune` writes it)."""
    return conf_dir / "tuned" / f"{name}.yaml"


def load_experiment(name: str, conf_dir: Path = CONF_DIR) -> ExperimentCfg:
    """One experiment: its template (if it names one), `conf/experiments/<name>.yaml`, the active
    profile's overlay for its model family, then a sweep winner from `conf/tuned/<name>.yaml`."""
    path = group_file(conf_dir, "experiments", name, "experiment")
    data = read_yaml(path)
    sources = str(path)
    if data.get("template"):
        template = group_file(conf_dir, "experiments", str(data["template"]), f"template of {path}: experiment")
        base = {k: v for k, v in read_yaml(template).items() if k not in ("task", "template")}
        data = overlay(base, data)
        sources += f" + template {template}"
    profile = active_profile(conf_dir)
    family = str((data.get("model") or {}).get("arch", ""))
    data = overlay({"name": name, **data}, profile_overlay(profile, conf_dir).get("families", {}).get(family, {}))
    tuned = tuned_file(name, conf_dir)
    winner = read_yaml(tuned) if tuned.is_file() else {}
    if winner.get("overrides"):
        data = overlay(data, winner["overrides"])
        data["tuned_from"] = (winner.get("sweep") or {}).get("mlflow_run_id")
        sources += f" + {tuned}"
    exp = validate(experiment_schema(), data, f"{sources} (profile {profile!r})")
    if not (conf_dir / "tasks" / f"{exp.task}.yaml").is_file():
        raise ConfigError(
            f"{path}: task: no task {exp.task!r} in {conf_dir / 'tasks'} "
            f"(known: {', '.join(group_names(conf_dir / 'tasks'))})"
        )
    return exp


def with_overrides(exp: ExperimentCfg, params: dict[str, Any], source: str) -> ExperimentCfg:
    """`exp` with dotted-key values applied (`model.hidden_dim`, `optim.lr`, `train.batch_tokens`)."""
    return validate(experiment_schema(), merge(exp.model_dump(mode="json"), nest(params)), source)


def experiment_names(conf_dir: Path = CONF_DIR) -> list[str]:
    return group_names(conf_dir / "experiments")
