"""A finished sweep read back: each trial's status, metric and configuration from Ray Tune's result grid, recorded on
its MLflow child run; the winner written to `conf/tuned/<experiment>.yaml`, which the train stage reads."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from seqforge.config.base import CONF_DIR, nest
from seqforge.experiments.config import tuned_file

STATUS_TAG = "trial_status"  # completed | stopped_early | failed | interrupted (lost to a killed driver)


def _trial_id(trial_dir: str) -> str:
    """Tune's trial id from a trial directory name (`<trainable>_<id>_<index>_<params>...`)."""
    found = re.search(r"_([0-9a-f]{8})_\d+_", Path(trial_dir).name)
    return found.group(1) if found else Path(trial_dir).name


def summarize(grid, sweep: dict, metric: str, mode: str, max_epochs: int) -> dict[str, Any]:
    """Per-trial status into the child runs (stopped early = ended before `max_epochs` without error, counting
    the epochs the child run logged as well as those Tune received);
    the only writer of `trial_status` and of the child runs' end."""
    from mlflow import MlflowClient

    client = MlflowClient(sweep["tracking_uri"])
    child_runs = {
        r.data.tags.get("trial_id"): r
        for r in client.search_runs([sweep["experiment_id"]], f"tags.mlflow.parentRunId = '{sweep['parent_run_id']}'")
    }
    trials, counts = [], {"completed": 0, "stopped_early": 0, "failed": 0}
    for result in grid:
        trial_id = (result.metrics or {}).get("trial_id") or _trial_id(result.path)
        run = child_runs.pop(trial_id, None)
        epochs = int((result.metrics or {}).get("training_iteration", 0))
        if run is not None:  # ASHA's stop is asynchronous: the trial may have logged an epoch Tune never saw
            epochs = max(epochs, len(client.get_metric_history(run.info.run_id, metric)))
        status = "failed" if result.error else ("stopped_early" if epochs < max_epochs else "completed")
        ended = {"failed": "FAILED", "stopped_early": "KILLED"}.get(status, "FINISHED")
        # both checked: a driver killed between the two writes left the tag set and the run open
        if run is not None and (run.data.tags.get(STATUS_TAG) != status or run.info.status != ended):
            client.set_tag(run.info.run_id, STATUS_TAG, status)
            client.set_terminated(run.info.run_id, ended)
        history = result.metrics_dataframe
        best = None
        if history is not None and metric in history:
            best = float(history[metric].max() if mode == "max" else history[metric].min())
        counts[status] += 1
        trials.append(
            {
                "trial_id": trial_id,
                "run_id": run.info.run_id if run else None,
                "status": status,
                "epochs": epochs,
                metric: best,
                "config": dict(result.config or {}),
                "error": str(result.error)[:500] if result.error else None,
            }
        )
    # left over: trials the killed driver was starting, which the restored sweep does not know
    for run in child_runs.values():
        if run.data.tags.get(STATUS_TAG) != "interrupted":
            client.set_tag(run.info.run_id, STATUS_TAG, "interrupted")
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, "KILLED")
    scored = [t for t in trials if t[metric] is not None and not math.isnan(t[metric])]
    if not scored:
        raise RuntimeError(f"sweep {sweep['name']}: no trial reported {metric}; see the child runs' errors")
    best = (max if mode == "max" else min)(scored, key=lambda t: t[metric])
    client.set_tag(best["run_id"], "best_trial", "true")
    return {
        "sweep": sweep["name"],
        "parent_run_id": sweep["parent_run_id"],
        "metric": metric,
        "mode": mode,
        "counts": counts,
        "trials": trials,
        "best": {
            "trial_id": best["trial_id"],
            "run_id": best["run_id"],
            "value": best[metric],
            "config": best["config"],
        },
    }


def write_tuned(name: str, summary: dict[str, Any], conf_dir: Path = CONF_DIR) -> Path:
    """Write the winner to `conf/tuned/<name>.yaml` (the train stage's overrides, and where they came from)."""
    best = summary["best"]
    path = tuned_file(name, conf_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "sweep": {
            "name": summary["sweep"],
            "mlflow_run_id": summary["parent_run_id"],
            "best_trial": best["trial_id"],
            "best_run_id": best["run_id"],
            "metric": summary["metric"],
            "value": round(best["value"], 4),
            "written": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "overrides": nest(best["config"]),
    }
    header = (
        f"# Written by `seqforge tune {name}`: the best trial of sweep {summary['sweep']}.\n"
        f"# train@{name} applies `overrides` on top of conf/experiments/{name}.yaml.\n"
    )
    path.write_text(header + yaml.safe_dump(record, sort_keys=False))
    return path
