"""Stage `train` of an experiment: an MLflow run with its parameters, data and tags, training on Ray Train
(`training.driver`), the exported model in `models/<experiment>/` and its learning curves."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from seqforge.config.base import ConfigError
from seqforge.config.shared import TrainCfg, load_config
from seqforge.core import paths
from seqforge.corpora.registry import load_corpus
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.experiments.config import ExperimentCfg, load_experiment
from seqforge.tasks.base import TaskCfg
from seqforge.tasks.registry import load_task, task_kind
from seqforge.tracking.client import data_version, metric_steps, setup_mlflow
from seqforge.training.budget import rate
from seqforge.training.budget.cluster import placed
from seqforge.training.budget.plan import Plan, PlanError, plan_experiment, still_improving
from seqforge.training.driver import fit_and_export
from seqforge.training.run_record import run_name, track_run

CURVE_METRICS = ("train_loss_epoch", "val_loss", "val_ppl", "val_bleu", "tokens_per_s", "lr", "clipped")


def train_experiment(name: str) -> Path:
    """Train experiment `name` as its plan says (printed first); the exported model lands in `models/<name>/`.
    A run that ended while still improving fast says so (`undertrained`, in the model and on the run)."""
    cfg, exp = load_config(), load_experiment(name)
    task = load_task(exp.task)
    train_cfg = placed(exp.train_config(cfg.train))  # workers and threads on the cluster (a part of the run's name)
    experiment_id = setup_mlflow(cfg.mlflow.experiment)
    data_hash = data_version(load_corpus(task.corpus))
    ray_name = run_name(exp, task, train_cfg, data_hash)
    plan = run_plan(exp, task, train_cfg, ray_name)
    print("\n".join(plan.lines()), flush=True)
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
        meta = track_run(exp, task, train_cfg, run.info.run_id, cfg.profile, data_hash)
        mlflow.log_params({f"plan.{k}": v for k, v in plan.as_dict().items() if k != "experiment"})
        fit_and_export(
            exp, task, train_cfg, {**meta, "plan": plan.as_dict()}, paths.model_dir(name), ray_name, plan.worker_view()
        )
        end = ended(run.info.run_id, exp, task, train_cfg, plan)
        write_curves(run.info.run_id, paths.curves_file(name))
    if end:
        print(f"warning: {end}", flush=True)
    return paths.model_dir(name)


def run_plan(exp: ExperimentCfg, task: TaskCfg, train_cfg: TrainCfg, ray_name: str) -> Plan:
    """The plan of Ray run `ray_name`: made once (`plan_experiment`) and kept in `.seqforge/plans/`, so a stage
    rerun that resumes the run goes on with the same updates and schedule."""
    saved = paths.STATE / "plans" / f"{ray_name}.json"
    if saved.is_file():
        return Plan(**json.loads(saved.read_text()))
    try:
        plan = plan_experiment(exp, task, train_cfg)
    except PlanError as err:
        raise ConfigError(f"experiment {exp.name}: {err}") from None
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(plan.as_dict(), indent=2) + "\n")
    return plan


def ended(run_id: str, exp: ExperimentCfg, task: TaskCfg, train_cfg: TrainCfg, plan: Plan) -> str | None:
    """After training: keep the run's measured rate for the next plan, and whether it ended while still
    improving fast (`still_improving`) or was cut by the time guard; that goes on the run (tag
    `undertrained`) and into `model.json`. Returns the warning, or None."""
    client = MlflowClient()
    per_update, per_eval = (list(metric_steps(client, run_id, m).values()) for m in ("s_per_update", "eval_s"))
    tokenizer = SubwordTokenizer.load(paths.tokenizer_file(exp.task))
    key = rate.rate_key(exp, train_cfg, (tokenizer.vocab_size("source"), tokenizer.vocab_size("target")), task.kind)
    if per_update and per_eval:
        rate.record(key, statistics.median(per_update), statistics.median(per_eval))
    metric, mode = task_kind(task.kind).monitor
    curve = sorted((step + 1, value) for step, value in metric_steps(client, run_id, metric).items())  # by update
    knob = f"train.{plan.unit} ({plan.setting})"
    replanned = metric_steps(client, run_id, "planned_updates")  # a time budget's run re-plans as it goes
    planned = int(replanned[max(replanned)]) if replanned else plan.updates
    warning = None
    if curve and curve[-1][0] < planned * 0.98 and not stopped_early(curve, mode, train_cfg):
        warning = (
            f"{exp.name}: the time guard stopped it at update {curve[-1][0]:,} of {planned:,} "
            f"planned; raise train.max_time or lower {knob}"
        )
    elif (gain := still_improving(curve, mode, train_cfg.undertrained_share)) is not None:
        warning = f"{exp.name}: still improving when it ended: {metric} {gain}; raise {knob} to train longer"
    if warning:
        mlflow.set_tag("undertrained", warning)
    model_json = paths.model_dir(exp.name) / "model.json"
    model_json.write_text(json.dumps({**json.loads(model_json.read_text()), "undertrained": warning}, indent=2))
    return warning


def stopped_early(curve: list[tuple[int, float]], mode: str, train_cfg: TrainCfg) -> bool:
    """Whether early stopping ended the run: its last `early_stopping_patience` evaluations beat no earlier one."""
    patience = train_cfg.early_stopping_patience
    if len(curve) <= patience:
        return False
    values = [v for _, v in curve]
    best_before = (max if mode == "max" else min)(values[:-patience])
    recent = values[-patience:]
    return all(v <= best_before for v in recent) if mode == "max" else all(v >= best_before for v in recent)


def write_curves(run_id: str, out: Path) -> None:
    """Per-evaluation learning curves from the MLflow run, as CSV for `dvc plots` (empty cells: not logged).
    An evaluation is a step at which `val_loss` was logged (`metric_steps`: redone ones count once); `update`
    is the updates done by then."""
    client = MlflowClient()
    history = {m: metric_steps(client, run_id, m) for m in CURVE_METRICS}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["evaluation", "update", *CURVE_METRICS])
        for evaluation, step in enumerate(sorted(history["val_loss"]), start=1):
            writer.writerow([evaluation, step + 1, *(history[m].get(step, "") for m in CURVE_METRICS)])
