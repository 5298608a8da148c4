"""A sweep (`conf/tune/<experiment>.yaml`): search space, search algorithm, ASHA scheduler, trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from seqforge.config.base import (
    CONF_DIR,
    ConfigError,
    Strict,
    active_profile,
    merge,
    profile_overlay,
    read_yaml,
    validate,
)
from seqforge.config.shared import TrainCfg, layered_train, load_config
from seqforge.experiments.config import ExperimentCfg, load_experiment, with_overrides

DOMAINS = ("choice", "uniform", "loguniform", "randint")


SPACE_SECTIONS = ("model", "optim", "train")


class SearchCfg(Strict):
    algorithm: Literal["optuna", "random"] = "optuna"  # Optuna's TPE, or random search
    seed: int = 0  # the search's seed: the same seed samples the same trials


class SchedulerCfg(Strict):
    """ASHA on the task's validation metric, one rung decision per epoch."""

    grace_period: int = Field(1, ge=1)  # epochs every trial gets before it may be stopped
    reduction_factor: float = Field(2.0, gt=1.0)  # keep the best 1/reduction_factor at each rung


class TuneCfg(Strict):
    """A sweep (`conf/tune/<experiment>.yaml`): search space, search algorithm, scheduler, trials."""

    num_samples: int = Field(8, ge=1)  # trials
    max_concurrent_trials: int | None = Field(None, ge=1)  # None: as many as the cluster's resources fit
    storage_path: str = "runs/tune"  # a shared URI (s3://, NFS path) on a multi-node cluster
    search: SearchCfg = SearchCfg()
    scheduler: SchedulerCfg = SchedulerCfg()
    train: dict[str, Any] = {}  # `train` overrides for every trial (workers, GPUs, epochs, time cap)
    space: dict[str, dict[str, list[Any]]]  # dotted key -> its domain: choice, uniform, loguniform or randint

    @model_validator(mode="after")
    def _domains(self) -> TuneCfg:
        for key, domain in self.space.items():
            if key.split(".", 1)[0] not in SPACE_SECTIONS or "." not in key:
                raise ValueError(f"space.{key}: keys are dotted paths under {', '.join(SPACE_SECTIONS)}")
            if len(domain) != 1 or next(iter(domain)) not in DOMAINS:
                raise ValueError(f"space.{key}: expected one of {', '.join(DOMAINS)}, got {domain}")
            kind, args = next(iter(domain.items()))
            if kind == "choice":
                if not args:
                    raise ValueError(f"space.{key}: choice needs at least one value")
                continue
            if len(args) != 2 or not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
                raise ValueError(f"space.{key}: {kind} needs [low, high] numbers, got {args}")
            low, high = args
            if not low < high:
                raise ValueError(f"space.{key}: {kind} needs low < high, got {args}")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"space.{key}: loguniform needs low > 0, got {args}")
            if kind == "randint" and not all(isinstance(a, int) for a in args):
                raise ValueError(f"space.{key}: randint needs integers [low, high), got {args}")
        return self

    def corner(self, key: str) -> Any:
        """One value of `key`'s domain (to check that the key exists in the experiment)."""
        return next(iter(self.space[key].values()))[0]


def load_tune(name: str, conf_dir: Path = CONF_DIR) -> tuple[TuneCfg, ExperimentCfg]:
    """The sweep of experiment `name` (with the profile's `tune` overlay) and its base experiment;
    every space key must exist there."""
    path = conf_dir / "tune" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (conf_dir / "tune").glob("*.yaml"))
        raise ConfigError(f"{path}: no sweep for experiment {name!r} (sweeps: {', '.join(known) or 'none'})")
    profile = active_profile(conf_dir)
    overlay = profile_overlay(profile, conf_dir).get("tune", {})  # e.g. a cluster's shared storage
    tune = validate(TuneCfg, merge(read_yaml(path), overlay), f"{path} (profile {profile!r})")
    exp = load_experiment(name, conf_dir)
    if tune.train.get("max_epochs") is None:
        raise ConfigError(
            f"{path}: train.max_epochs: a sweep is sized in epochs (ASHA compares trials at epoch ends); set it"
        )
    train = layered_train(load_config(conf_dir).train.model_dump(), exp.train, tune.train)
    validate(TrainCfg, train, f"{path}: train")
    for key in tune.space:
        source = f"{path}: space.{key}"
        trial = with_overrides(exp, {key: tune.corner(key)}, source)
        validate(TrainCfg, layered_train(train, trial.train, tune.train), source)
    return tune, exp
