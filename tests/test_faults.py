"""Faults during training, on the smoke repo: the Ray Train driver killed, a Ray Train worker killed.

Real parts only (a local Ray instance with 2 workers, the MLflow SQLite store); the faults are real
SIGKILLs. Each test trains gru_bahdanau with its own settings in the smoke profile and puts the
repo back as `dvc repro` left it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SMOKE_PROFILE, TRAIN, epochs_printed, metric_history, run, set_rnn_training, train_run

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def restored(repo: Path, scratch: Path, *paths: str) -> Iterator[None]:
    """Put `paths` (files or folders under `repo`) back as they were on exit, so a stage rerun by hand
    leaves the shared smoke repo as `dvc repro` left it."""
    scratch.mkdir(parents=True, exist_ok=True)
    for name in paths:
        copy = shutil.copytree if (repo / name).is_dir() else shutil.copy2
        copy(repo / name, scratch / name.replace("/", "__"))
    try:
        yield
    finally:
        for name in paths:
            target, saved = repo / name, scratch / name.replace("/", "__")
            if target.is_dir():
                shutil.rmtree(target)
                shutil.copytree(saved, target)
            else:
                shutil.copy2(saved, target)


@contextlib.contextmanager
def rnn_training(repo: Path, scratch: Path, **train) -> Iterator[None]:
    """`set_rnn_training` for one block; gru_bahdanau's outputs and the profile are restored after it."""
    with restored(repo, scratch, SMOKE_PROFILE, "models/gru_bahdanau", "metrics/curves/gru_bahdanau.csv"):
        set_rnn_training(repo, **train)
        yield


def latest_checkpoint(storage: Path) -> dict | None:
    """Metrics of the latest checkpoint Ray registered under `storage` (what a restart restores)."""
    for snapshot in storage.glob("*/checkpoint_manager_snapshot.json"):
        with contextlib.suppress(OSError, ValueError):
            latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result")
            if latest:
                return latest["metrics"]
    return None


def wait_for_checkpoint(proc: subprocess.Popen, log: Path, storage: Path, done, timeout: float = 300) -> dict:
    """Poll until the latest checkpoint satisfies `done(metrics)`; the training must still be running."""
    deadline = time.time() + timeout
    while not ((metrics := latest_checkpoint(storage)) and done(metrics)):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.time() < deadline, f"no such checkpoint within {timeout} s"
        time.sleep(0.2)
    return metrics


def test_killed_training_resumes_from_its_last_checkpoint(smoke_repo, tmp_path) -> None:
    """Kill the Ray Train driver after its first checkpoint; the rerun continues, not restarts."""
    repo, env = smoke_repo
    with rnn_training(repo, tmp_path, max_epochs=3, early_stopping_patience=50, storage_path="runs/ray-driver"):
        log = repo / "first.log"
        with open(log, "w") as out:
            first = subprocess.Popen(TRAIN, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
            wait_for_checkpoint(first, log, repo / "runs" / "ray-driver", lambda m: not m.get("mid_epoch"))
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        run(["ray", "stop", "--force"], repo, env, check=False)
        second = run(TRAIN, repo, env)
        epochs = epochs_printed(second.stdout + second.stderr)
        assert epochs and epochs[0] >= 2, f"resumed run started at epoch {epochs[:1]}"
        assert max(epochs) == 3
    assert "train@gru_bahdanau" not in run(["dvc", "status", "dvc.yaml"], repo, env).stdout


def ray_train_workers() -> list[int]:
    """PIDs of this machine's Ray Train worker processes."""
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                pids.append(int(proc.name))
    return sorted(pids)


def test_a_killed_worker_is_replaced_and_the_run_finishes_in_the_same_mlflow_run(smoke_repo, tmp_path) -> None:
    """SIGKILL one Ray Train worker mid-epoch: Ray restarts the worker group from the last (mid-epoch)
    checkpoint, the run ends normally in its MLflow run with every epoch's metrics once, less than an
    epoch of updates is redone, and the result is within noise of an uninterrupted run."""
    repo, env = smoke_repo
    reference = metric_history(repo, env, train_run(repo), "val_loss")  # the smoke run: 2 epochs, no fault
    epochs = len(reference["val_loss"])
    # resume points every 10 updates (and new inputs: a new Ray run), otherwise the smoke run's settings
    with rnn_training(repo, tmp_path, checkpoint_every_n_steps=10, storage_path="runs/ray-killed"):
        log = repo / "killed.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(TRAIN, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT)
            resume = wait_for_checkpoint(proc, log, repo / "runs" / "ray-killed", lambda m: m.get("mid_epoch"))
            workers = ray_train_workers()
            assert len(workers) == 2, workers
            time.sleep(1.0)  # a few updates past the checkpoint: work the restart must redo
            os.kill(workers[1], signal.SIGKILL)
            assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
        output = log.read_text()
        killed = metric_history(repo, env, train_run(repo), "val_loss", "train_loss_step")

    assert "worker died" in output.lower() or "unexpectedly exits" in output, output[-2000:]
    assert epochs_printed(output) == list(range(1, epochs + 1))  # every epoch once, none lost
    assert killed["status"] == "FINISHED"
    steps = [step for step, _ in killed["val_loss"]]
    assert len(steps) == epochs == len(set(steps)), killed["val_loss"]
    logged = [step for step, _ in killed["train_loss_step"]]
    redone = {step for step in logged if logged.count(step) > 1}  # logged before the kill and again after it
    steps_per_epoch = steps[0] + 1
    assert all(step > resume["step"] for step in redone), (resume, redone)
    assert len(redone) * 5 <= steps_per_epoch, redone  # smoke logs every 5 updates: less than an epoch redone
    final, final_reference = killed["val_loss"][-1][1], reference["val_loss"][-1][1]
    print(f"worker killed after update {resume['step']} (epoch 1 of {epochs}, {steps_per_epoch} updates per epoch); "
          f"redone updates logged: {sorted(redone)}; final val loss {final:.4f} vs {final_reference:.4f} uninterrupted")
    assert abs(final - final_reference) <= 0.02 * final_reference
