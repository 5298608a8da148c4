"""Hyper-parameter sweeps with Ray Tune: each trial is a distributed Ray Train run.

`seqforge tune <experiment>` samples `conf/tune/<experiment>.yaml` with Optuna (seeded), lets
ASHA stop weak trials on the task's validation metric after each epoch, tracks one MLflow parent
run per sweep with one child run per trial, and writes the winner to `conf/tuned/<experiment>.yaml`,
which the experiment's train stage reads.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seqforge.config.base import ConfigError
from seqforge.config.shared import TrainCfg, layered_train, load_config
from seqforge.core import paths
from seqforge.corpora.registry import load_corpus
from seqforge.data.shipping import ship
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.experiments.config import ExperimentCfg, experiment_schema, with_overrides
from seqforge.research.tune_config import TuneCfg, load_tune
from seqforge.research.tune_results import summarize, write_tuned
from seqforge.tasks.registry import load_task, task_kind, task_schema
from seqforge.tracking.client import data_version, setup_mlflow, tracking_uri
from seqforge.training.budget.cluster import placed, ray_runtime_env
from seqforge.training.driver import fit_on_ray, loop_config


def search_space(tune: TuneCfg) -> dict[str, Any]:
    """The YAML domains as Ray Tune domains, keyed by dotted path."""
    from ray import tune as rt

    make = {"choice": rt.choice, "uniform": rt.uniform, "loguniform": rt.loguniform, "randint": rt.randint}
    return {
        key: (make[kind](args) if kind == "choice" else make[kind](*args))
        for key, domain in tune.space.items()
        for kind, args in domain.items()
    }


def trial_train_cfg(base: dict[str, Any], exp: ExperimentCfg, tune: TuneCfg) -> TrainCfg:
    """One trial's settings: global `train` (`base`) < the experiment's < the sweep's < sampled `train.*`.
    No mid-epoch checkpoints: Tune takes every Ray Train report as a result, and ASHA counts epochs."""
    sampled = {k: v for k, v in exp.train.items() if f"train.{k}" in tune.space}
    return TrainCfg.model_validate(
        layered_train(base, exp.train, tune.train, sampled)
        | {"storage_path": tune.storage_path, "checkpoint_every_n_steps": None}
    )


def _child_run(client, sweep: dict, trial_id: str) -> str:
    """The trial's MLflow child run: created once, found again when a resumed sweep reruns it."""
    found = client.search_runs(
        [sweep["experiment_id"]],
        f"tags.mlflow.parentRunId = '{sweep['parent_run_id']}' and tags.trial_id = '{trial_id}'",
    )
    if found:
        return found[0].info.run_id
    tags = {
        "mlflow.parentRunId": sweep["parent_run_id"],
        "trial_id": trial_id,
        "sweep": sweep["name"],
        "experiment": sweep["experiment"]["name"],
        "task": sweep["experiment"]["task"],
    }
    return client.create_run(sweep["experiment_id"], run_name=f"trial-{trial_id}", tags=tags).info.run_id


def run_trial(config: dict[str, Any], sweep: dict[str, Any]) -> None:
    """Tune trial driver (Train V2 pattern): build the sampled experiment, run it on Ray Train.

    Runs in a Tune trial actor; the Ray Train workers report each epoch, and `TuneReportCallback`
    forwards the reports so ASHA can stop the trial. A configuration that cannot be built or
    trained raises: Tune records the trial as errored and the sweep goes on.
    """
    import ray.tune
    from mlflow import MlflowClient
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = ray.tune.get_context().get_trial_id()
    client = MlflowClient(sweep["tracking_uri"])
    run_id = _child_run(client, sweep, trial_id)
    sampled = dict(config)
    for key, value in sampled.items():
        client.log_param(run_id, key, value)
    try:
        base = experiment_schema().model_validate(sweep["experiment"])
        exp = with_overrides(base, sampled, f"trial {trial_id}")
        train_cfg = placed(trial_train_cfg(sweep["train"], exp, TuneCfg.model_validate(sweep["tune"])))
        tokenizer = SubwordTokenizer.loads(sweep["tokenizer"])  # from the driver: no repository on this node
        task = task_schema().validate_python(sweep["task"])
        result = fit_on_ray(
            loop_config(exp, task, train_cfg, tokenizer, run_id, sweep["data"]),
            train_cfg,
            f"{sweep['name']}-{trial_id}",
            task_kind(task.kind).monitor,
            callbacks=(TuneReportCallback(),),
            progress=False,
        )
        if result.error is not None:
            raise RuntimeError(f"trial {trial_id}: Ray Train run failed: {result.error}") from result.error
    except Exception as err:
        client.set_tag(run_id, "error", f"{type(err).__name__}: {err}"[:4000])
        raise
    # The trial's status and end are written by the driver only (`summarize`): a trial ASHA stops can
    # still be finishing here while the driver records it, and two writers of one tag collide.


def max_concurrent(tune: TuneCfg, train: TrainCfg) -> int:
    """Trials that fit the cluster at once: its CPUs (GPUs) over what one trial's workers take."""
    import ray

    total = ray.cluster_resources()
    fits = total.get("CPU", 0) // (train.num_workers * train.cpus_per_worker)
    if train.use_gpu:
        fits = min(fits, total.get("GPU", 0) // train.num_workers)
    return tune.max_concurrent_trials or max(1, int(fits))


def _state_file(name: str) -> Path:
    return Path("runs") / "tune" / f"{name}.latest.json"


def run_sweep(name: str, num_samples: int | None = None, resume: bool = False) -> dict[str, Any]:
    """Run (or `resume`) the sweep of experiment `name`; returns the summary written to conf/tuned."""
    import mlflow
    import ray
    from ray import tune as rt
    from ray.tune.schedulers import ASHAScheduler

    tune, exp = load_tune(name)
    if num_samples is not None:
        tune = tune.model_copy(update={"num_samples": num_samples})
    cfg = load_config()
    task = load_task(exp.task)
    metric, mode = task_kind(task.kind).monitor
    state_file = _state_file(name)
    if resume:
        if not state_file.is_file():
            raise ConfigError(f"{state_file}: no interrupted sweep of {name} to resume")
        state = json.loads(state_file.read_text())
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        state = {"name": f"tune-{name}-{stamp}"}
    storage = paths.ray_storage(tune.storage_path, "tune")
    tune = tune.model_copy(update={"storage_path": storage})  # trials run on any node: no relative path

    experiment_id = setup_mlflow(cfg.mlflow.experiment)
    with mlflow.start_run(
        run_id=state.get("parent_run_id"), experiment_id=experiment_id, run_name=state["name"]
    ) as parent:
        if "parent_run_id" not in state:
            state["parent_run_id"] = parent.info.run_id
            state_file.parent.mkdir(parents=True, exist_ok=True)
            state_file.write_text(json.dumps(state, indent=2))
            mlflow.set_tags(
                {
                    "sweep": state["name"],
                    "experiment": name,
                    "task": exp.task,
                    "data_version": data_version(load_corpus(task.corpus)),
                }
            )
            mlflow.log_params(
                {
                    "num_samples": tune.num_samples,
                    "search": tune.search.algorithm,
                    "seed": tune.search.seed,
                    "metric": metric,
                    "mode": mode,
                    **{f"space.{k}": json.dumps(v) for k, v in tune.space.items()},
                }
            )
        # a local instance starts its dashboard: Ray Train's state API frees the resources of stopped trials
        ray.init(
            address=os.environ.get("RAY_ADDRESS") or "local",
            configure_logging=False,
            ignore_reinit_error=True,
            runtime_env=ray_runtime_env(),
        )
        base_train = cfg.train.model_dump()
        trial_cfg = placed(trial_train_cfg(base_train, exp, tune))
        # what trials read goes with them (the tokenized data through the object store, once for all trials)
        sweep = {
            "name": state["name"],
            "parent_run_id": state["parent_run_id"],
            "experiment_id": experiment_id,
            "tracking_uri": tracking_uri(),
            "experiment": exp.model_dump(mode="json"),
            "train": base_train,
            "tune": tune.model_dump(mode="json"),
            "task": task.model_dump(mode="json"),
            "tokenizer": SubwordTokenizer.load(paths.tokenizer_file(exp.task)).dumps(),
            "data": ship(paths.tokenized_dir(exp.task)),
        }
        # the trial driver only waits on its Train run: a token memory request, no CPU (the workers take those)
        trainable = rt.with_resources(rt.with_parameters(run_trial, sweep=sweep), {"CPU": 0, "memory": 64 * 2**20})
        path = f"{storage}/{state['name']}"
        if resume and rt.Tuner.can_restore(path):
            tuner = rt.Tuner.restore(
                path, trainable, resume_errored=False, restart_errored=True, param_space=search_space(tune)
            )
        else:
            tuner = rt.Tuner(
                trainable,
                param_space=search_space(tune),
                tune_config=rt.TuneConfig(
                    metric=metric,
                    mode=mode,
                    num_samples=tune.num_samples,
                    max_concurrent_trials=max_concurrent(tune, trial_cfg),
                    search_alg=_searcher(tune, metric, mode),
                    # max_t past the last epoch: a trial that reaches max_epochs ends by itself
                    scheduler=ASHAScheduler(
                        time_attr="training_iteration",
                        max_t=trial_cfg.max_epochs + 1,
                        grace_period=tune.scheduler.grace_period,
                        reduction_factor=tune.scheduler.reduction_factor,
                    ),
                ),
                run_config=rt.RunConfig(name=state["name"], storage_path=storage, verbose=1),
            )
        grid = tuner.fit()
        summary = summarize(grid, sweep, metric, mode, trial_cfg.max_epochs)
        mlflow.log_dict(summary, "sweep/summary.json")
        mlflow.log_metrics(
            {
                f"best_{metric}": summary["best"]["value"],
                **{f"trials_{status}": n for status, n in summary["counts"].items()},
            }
        )
        mlflow.set_tags({"best_trial": summary["best"]["trial_id"], "best_run_id": summary["best"]["run_id"]})
    write_tuned(name, summary)
    report = paths.REPORTS / "tune" / f"{name}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(summary, indent=2) + "\n")
    state_file.unlink(missing_ok=True)
    return summary


def _searcher(tune: TuneCfg, metric: str, mode: str):
    if tune.search.algorithm == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(metric=metric, mode=mode, sampler=optuna.samplers.TPESampler(seed=tune.search.seed))
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=tune.search.seed)
