"""The invariants a fault campaign (`bench.chaos`) checks after each faulted run of the train stage, against a
fault-free run with the same seed: one finished MLflow run (two where the stage was run again), every metric of every
step logged once and in order, every checkpoint Ray registered whole, DVC up to date, the same weights."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch

from seqforge.training.worker.storage import torn

DVC = str(Path(sys.executable).with_name("dvc"))
STAGE = "train@gru_bahdanau"
VARYING = {"resumed_from_update"}  # logged by a resumed run only


@dataclass
class Outcome:
    runs: list[str]  # the MLflow runs the stage created, in order
    weights: dict[str, torch.Tensor]
    seconds: float
    killed: bool = False  # the driver was killed, and the stage run again
    faulted: bool = False  # the fault happened before the stage ended
    failed: str | None = None  # how the stage failed before its rerun finished: in one line or with a traceback, why


def steps(client: mlflow.MlflowClient, runs: list[str]) -> dict[str, list[int]]:
    """Each metric's steps as logged, across `runs` in order (a killed driver's run, then its rerun's)."""
    logged: dict[str, list[int]] = {}
    for run in runs:
        for key in client.get_run(run).data.metrics:
            history = sorted(client.get_metric_history(run, key), key=lambda m: (m.timestamp, m.step))
            logged.setdefault(key, []).extend(m.step for m in history)
    return logged


def broken(client, outcome: Outcome, reference: dict[str, list[int]], repo: Path, storage: str) -> list[str]:
    """The invariants that do not hold after one faulted run."""
    said = dvc_changed(repo, STAGE)
    final = client.get_run(outcome.runs[-1]).info.status
    if final != "FINISHED" or len(outcome.runs) not in ((1, 2) if outcome.killed or outcome.failed else (1,)):
        said.append(f"finished: {len(outcome.runs)} runs, the last {final}")
    if outcome.failed and outcome.failed.startswith("with a traceback"):
        said.append(f"one line: the stage failed {outcome.failed}, then finished when run again")
    logged = {k: v for k, v in steps(client, outcome.runs).items() if k not in VARYING}
    if wrong := sorted(k for k in reference.keys() | logged.keys() if logged.get(k) != reference.get(k)):
        key = wrong[0]
        said.append(
            f"metrics once: {len(wrong)} differ, e.g. {key} at steps {logged.get(key)}, not {reference.get(key)}"
        )
    for snapshot in (repo / storage).glob("*/checkpoint_manager_snapshot.json"):
        for result in json.loads(snapshot.read_text())["checkpoint_results"]:
            folder = snapshot.parent / result["checkpoint_dir_name"]
            if folder.exists() and (why := torn(folder)):
                said.append(f"checkpoints complete: {folder.name} {why}")
    return said


def dvc_changed(repo: Path, stage: str) -> list[str]:
    """Nothing when DVC finds `stage` up to date, else what `dvc status` says."""
    status = subprocess.run([DVC, "status", stage], cwd=repo, capture_output=True, text=True)
    if status.returncode == 0 and "up to date" in status.stdout:
        return []
    return [f"dvc status: {' '.join((status.stdout + status.stderr).split())[:200]}"]


def difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """0.0 when two state dicts are bit for bit equal, else the largest absolute difference of a tensor (inf: their
    names or shapes differ)."""
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return math.inf
    unequal = [k for k in a if not torch.equal(a[k], b[k])]
    return max(((a[k].double() - b[k].double()).abs().max().item() or math.inf for k in unequal), default=0.0)
