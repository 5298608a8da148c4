"""`conf/study.yaml`: the study's models, the parameter budget they are sized to and the training they share."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from seqforge.config.base import (
    CONF_DIR,
    ConfigError,
    Name,
    Strict,
    active_profile,
    merge,
    profile_overlay,
    read_yaml,
    validate,
)
from seqforge.config.shared import TrainCfg, layered_train, load_config
from seqforge.corpora.registry import load_corpus, longest_source
from seqforge.experiments.config import ExperimentCfg, load_experiment, with_overrides
from seqforge.models.registry import FAMILIES
from seqforge.tasks.registry import load_task


class StudyModelCfg(Strict):
    """One model of the study: an experiment file, changed by dotted-key `set` values."""

    base: Name | None = None  # the experiment it starts from (default: the study's `base`)
    set: dict[str, Any] = {}  # e.g. model.cell: lstm, optim.clip_norm: null
    width: dict[str, int] | None = None  # keys sized to the parameter budget, as multiples of one width
    # (default: model.hidden_dim for RNNs; model.d_model and 3 × it as model.ffn_dim for Transformers)


STUDIES = {"classic": "study", "long": "study_long"}  # `seqforge study --study NAME` -> conf/<stem>.yaml, whose
# stem also names the profile section, metrics/<stem>.json and reports/<stem>/


class StudyCfg(Strict):
    """`conf/study.yaml`: the models, the parameter budget they are sized to and the training they share."""

    task: Name = "translation"  # the task every model trains and is tested on
    length_metric: Literal["bleu", "accuracy"] = "bleu"  # by source length: sacreBLEU, or exact match and token
    # accuracy per sub-task (synthetic corpora)
    base: Name  # the experiment every model starts from unless it names its own
    parameter_budget: int = Field(..., ge=1000)  # every model sized to the nearest count it can reach
    width_step: int = Field(16, ge=1)  # widths are multiples of this (Transformers: of heads too)
    set: dict[str, dict[str, Any]] = {}  # dotted-key values for every model of a
    # family (model.arch), before its own
    train: dict[str, Any] = {}  # train settings for every model: the same wall-time cap is the budget
    length_buckets: list[int] = Field([10, 15, 20, 25], min_length=1)  # upper source lengths (words) of
    # the BLEU buckets: ≤10, 11–15, 16–20, 21–25, >25
    models: dict[Name, StudyModelCfg] = Field(..., min_length=1)  # model name -> how it differs from `base`

    @field_validator("set")
    @classmethod
    def _families(cls, values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(values) - set(FAMILIES))
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a registered model family ({', '.join(FAMILIES)})")
        return values

    @field_validator("length_buckets")
    @classmethod
    def _buckets_rise(cls, edges: list[int]) -> list[int]:
        if edges != sorted(set(edges)) or edges[0] < 1:
            raise ValueError("positive, strictly rising lengths")
        return edges


def load_study(
    conf_dir: Path = CONF_DIR, name: str = "classic"
) -> tuple[StudyCfg, dict[str, tuple[ExperimentCfg, TrainCfg]]]:
    """`conf/<stem>.yaml` of study `name` with the profile's `<stem>` overlay, and each model's experiment
    (before sizing to the budget) and train settings: global train < the experiment's < the study's. A model
    may start from an experiment of another task of the same kind: it trains on the study's task."""
    stem = STUDIES[name]
    path = conf_dir / f"{stem}.yaml"
    profile = active_profile(conf_dir)
    overlay = profile_overlay(profile, conf_dir).get(stem, {})
    source = f"{path} (profile {profile!r})"
    study = validate(StudyCfg, merge(read_yaml(path), overlay), source)
    task = load_task(study.task, conf_dir)
    longest = longest_source(load_corpus(task.corpus, conf_dir))
    base_train = load_config(conf_dir).train.model_dump()
    plans = {}
    for model, entry in study.models.items():
        exp = load_experiment(entry.base or study.base, conf_dir)
        if exp.task != study.task:
            if load_task(exp.task, conf_dir).kind != task.kind:
                raise ConfigError(
                    f"{source}: models.{model}.base: experiment {exp.name!r} is for task {exp.task!r}, "
                    f"a {load_task(exp.task, conf_dir).kind} task; the study's task is {study.task!r}, "
                    f"a {task.kind} task"
                )
            exp = exp.model_copy(update={"task": study.task})
        exp = with_overrides(
            exp.model_copy(update={"name": model}),
            {**study.set.get(exp.model.arch, {}), **entry.set},
            f"{source}: models.{model}",
        )
        positions = getattr(exp.model, "max_positions", None)
        if longest is not None and positions is not None and longest + 1 > positions:
            raise ConfigError(
                f"{source}: models.{model}: model.max_positions {positions} is shorter than the longest "
                f"source of corpus {task.corpus} ({longest} tokens and EOS): raise it, or lower the "
                f"corpus's max_length"
            )
        train = validate(TrainCfg, layered_train(base_train, exp.train, study.train), f"{source}: train")
        plans[model] = (exp, train)
    return study, plans
