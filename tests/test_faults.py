"""Faults during training, on copies of the smoke repo: the Ray Train driver killed, a Ray Train worker
killed (between an epoch's validation and its checkpoint, and mid-epoch).

Real parts only (the session's Ray cluster with 2 workers per run, the MLflow SQLite store); the faults
are real SIGKILLs. A worker kills itself at a chosen update (`seqforge.training.worker.faults`), so the tests check the
same thing on any machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from helpers import (
    TRAIN,
    copy_repo,
    epochs_printed,
    metric_history,
    run,
    set_rnn_training,
    train_run,
)

pytestmark = pytest.mark.slow

CHECKPOINT_EVERY = 10  # updates between mid-epoch resume points


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


def ray_train_workers() -> list[int]:
    """PIDs of this machine's Ray Train worker processes."""
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                pids.append(int(proc.name))
    return sorted(pids)


@dataclass(frozen=True)
class Faulted:
    repo: Path
    env: dict
    output: str  # the rerun stage's output
    killed_at: int  # updates done when the worker died
    marker: Path  # exists once the worker killed itself
    reference: dict  # the smoke run's val_loss history (no fault)


@pytest.fixture(scope="module")
def faulted(smoke_repo, tmp_path_factory) -> Faulted:
    """gru_bahdanau's train stage (the smoke run's 2 epochs, a resume point every 10 updates) in a copy of
    the smoke repo: its driver SIGKILLed once epoch 1's checkpoint is registered; the stage run again,
    which resumes the Ray run, and whose rank-1 worker SIGKILLs itself right after epoch 2's validation
    was logged, before that epoch's checkpoint (where a restarted worker group used to log the epoch's
    metrics twice); Ray restarts the worker group from the last checkpoint it registered."""
    smoke, env = smoke_repo
    base = tmp_path_factory.mktemp("faults")
    repo = copy_repo(smoke, base / "seqforge", "runs")
    reference = metric_history(repo, env, train_run(repo), "val_loss")
    set_rnn_training(
        repo, checkpoint_every_n_steps=CHECKPOINT_EVERY, early_stopping_patience=50, storage_path="runs/ray-faults"
    )
    log = base / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen(TRAIN, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_checkpoint(first, log, repo / "runs" / "ray-faults", lambda m: not m.get("mid_epoch"))
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    deadline = time.time() + 60  # the cluster ends the dead driver's job: its workers go
    while ray_train_workers():
        assert time.time() < deadline, "the killed driver's Ray Train workers outlived it by a minute"
        time.sleep(0.5)
    steps_per_epoch = reference["val_loss"][0][0] + 1
    marker = base / "worker-killed"
    rerun = run(TRAIN, repo, {**env, "SEQFORGE_KILL_WORKER": f"1:{steps_per_epoch + 1}:validation:{marker}"})
    return Faulted(repo, env, rerun.stdout + rerun.stderr, 2 * steps_per_epoch, marker, reference)


def test_killed_training_resumes_from_its_last_checkpoint(faulted) -> None:
    """The rerun stage goes on from the killed driver's last checkpoint: epoch 2, not epoch 1 again."""
    history = metric_history(faulted.repo, faulted.env, train_run(faulted.repo), "val_loss", "resumed_from_update")
    epochs = epochs_printed(faulted.output)
    assert epochs == [2], f"the rerun trained epochs {epochs}, not only the one the killed run had left"
    steps_per_epoch = faulted.reference["val_loss"][0][0] + 1
    assert history["resumed_from_update"][0][1] == steps_per_epoch  # the rerun (a new MLflow run) started there


def test_a_killed_worker_is_replaced_and_the_run_finishes_in_the_same_mlflow_run(faulted) -> None:
    """Ray restarts the worker group from the last checkpoint it registered; the run ends normally in its
    MLflow run with every metric once, though updates were done twice, and with the uninterrupted smoke run's
    final validation loss, exactly."""
    killed = metric_history(
        faulted.repo, faulted.env, train_run(faulted.repo), "val_loss", "train_loss_step", "resumed_from_update"
    )
    steps_per_epoch = faulted.reference["val_loss"][0][0] + 1
    assert faulted.marker.exists(), "the worker was not killed"
    assert "worker died" in faulted.output.lower() or "unexpectedly exits" in faulted.output, faulted.output[-2000:]
    # the stage rerun's start, then the restarted worker group's: from a checkpoint Ray had registered before
    # the kill (the rerun's start is not repeated when the restart goes back to that same checkpoint)
    resumed = [int(value) for _, value in killed["resumed_from_update"]]
    assert resumed[0] == steps_per_epoch and len(resumed) <= 2 and resumed == sorted(resumed), resumed
    restart_from = resumed[-1]
    assert restart_from < faulted.killed_at and (
        restart_from == steps_per_epoch or restart_from % CHECKPOINT_EVERY == 0
    )
    assert killed["status"] == "FINISHED"
    assert [step for step, _ in killed["val_loss"]] == [2 * steps_per_epoch - 1]  # epoch 2's, once
    logged = [step for step, _ in killed["train_loss_step"]]  # smoke logs every 5 updates
    expected = [s for s in range(steps_per_epoch, 2 * steps_per_epoch) if (s + 1) % 5 == 0]
    assert logged == expected, logged  # updates redone after the restart, each logged once, in order
    final, final_reference = killed["val_loss"][-1][1], faulted.reference["val_loss"][-1][1]
    print(
        f"worker killed after update {faulted.killed_at} (epoch 2's validation; {steps_per_epoch} updates per "
        f"epoch), restarted from update {restart_from}, redoing {faulted.killed_at - restart_from}; "
        f"final val loss {final:.4f} vs {final_reference:.4f} uninterrupted"
    )
    assert final == final_reference  # the redone updates redone exactly (`StepSeed`, the loader's place)


@pytest.mark.nightly
def test_a_worker_killed_mid_epoch_is_replaced_and_every_metric_is_logged_once(smoke_copy, tmp_path) -> None:
    """Rank 1 SIGKILLs itself before update 15, mid-epoch, 5 updates after a resume point."""
    repo, env = smoke_copy
    reference = metric_history(repo, env, train_run(repo), "val_loss")
    epochs = len(reference["val_loss"])
    steps_per_epoch = reference["val_loss"][0][0] + 1
    marker = tmp_path / "killed"
    set_rnn_training(repo, checkpoint_every_n_steps=CHECKPOINT_EVERY, storage_path="runs/ray-killed")
    trained = run(TRAIN, repo, {**env, "SEQFORGE_KILL_WORKER": f"1:15:update:{marker}"})
    killed = metric_history(repo, env, train_run(repo), "val_loss", "train_loss_step", "resumed_from_update")
    assert marker.exists() and epochs_printed(trained.stdout + trained.stderr) == list(range(1, epochs + 1))
    assert [r for _, r in killed["resumed_from_update"]] in ([], [10.0])  # from scratch, or the resume point
    assert [step for step, _ in killed["val_loss"]] == [(e + 1) * steps_per_epoch - 1 for e in range(epochs)]
    logged = [step for step, _ in killed["train_loss_step"]]
    assert logged == [s for s in range(epochs * steps_per_epoch) if (s + 1) % 5 == 0], logged
    assert killed["val_loss"][-1][1] == reference["val_loss"][-1][1]


def test_a_torn_latest_checkpoint_is_passed_over_for_the_last_complete_one(smoke_copy, tmp_path) -> None:
    """The driver SIGKILLed once epoch 1's checkpoint is registered, then that checkpoint's file cut to half in the
    storage (a write Ray took for complete): the stage run again says so in one line, resumes from the newest
    complete checkpoint before it (a resume point), and finishes; the torn one is never loaded."""
    repo, env = smoke_copy
    set_rnn_training(
        repo, checkpoint_every_n_steps=CHECKPOINT_EVERY, early_stopping_patience=50, storage_path="runs/ray-torn"
    )
    storage, log = repo / "runs" / "ray-torn", tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen(TRAIN, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_checkpoint(first, log, storage, lambda m: not m.get("mid_epoch"))
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    deadline = time.time() + 60
    while ray_train_workers():
        assert time.time() < deadline, "the killed driver's Ray Train workers outlived it by a minute"
        time.sleep(0.5)
    (snapshot,) = storage.glob("*/checkpoint_manager_snapshot.json")
    latest = json.loads(snapshot.read_text())["latest_checkpoint_result"]
    # the newest checkpoint folder before it (Ray names them by time): a resume point of epoch 1, or of epoch 2
    # when one was registered between the poll and the kill
    before = max(d for d in snapshot.parent.glob("checkpoint_*") if d.name < latest["checkpoint_dir_name"])
    resumed_at = torch.load(before / "checkpoint.ckpt", weights_only=False)["global_step"]  # the rerun may drop it
    weights = snapshot.parent / latest["checkpoint_dir_name"] / "checkpoint.ckpt"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])

    rerun = run(TRAIN, repo, env)
    said = [line for line in (rerun.stdout + rerun.stderr).splitlines() if "is incomplete" in line]
    assert len(said) == 1 and latest["checkpoint_dir_name"] in said[0], said
    assert f"(checkpoint.ckpt: {size // 2:,} of {size:,} bytes): resuming from " in said[0], said
    resumed = metric_history(repo, env, train_run(repo), "resumed_from_update")
    assert resumed["status"] == "FINISHED"
    (start,) = [int(update) for _, update in resumed["resumed_from_update"]]
    assert said[0].endswith(f"resuming from {before}"), said
    assert start == resumed_at < latest["metrics"]["step"], (start, resumed_at, latest["metrics"])


def test_a_full_disk_stops_training_in_one_line_and_the_stage_resumes_once_there_is_room(
    smoke_repo, smoke_copy, tmp_path
) -> None:
    """Checkpoints go to a tmpfs with room for one and a half of them: epoch 1's is written, epoch 2's is not;
    the stage stops with one line naming the storage and the bytes needed. Given room, the stage run again
    resumes from epoch 1's checkpoint and finishes. On a local Ray: the session cluster's worker node has a mount
    namespace of its own, which does not see a tmpfs mounted after it started."""
    smoke, _ = smoke_repo
    repo, env = smoke_copy
    env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
    size = max(p.stat().st_size for p in (smoke / "runs").glob("ray/gru_bahdanau-*/checkpoint_*/checkpoint.ckpt"))
    small = tmp_path / "small"
    small.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size * 3 // 2 + 65536}", "tmpfs", str(small)]
    if subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        set_rnn_training(repo, storage_path=str(small))
        stopped = run(TRAIN, repo, env, check=False)
        said = [line for line in (stopped.stdout + stopped.stderr).splitlines() if "is full" in line]
        assert stopped.returncode != 0 and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
        where = re.escape(str(small))
        assert len(said) == 1 and re.search(rf"checkpoint storage {where}/\S+ is full \(the checkpoint needs", said[0])
        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        resumed = run(TRAIN, repo, env)
    finally:
        subprocess.run(["umount", "--lazy", str(small)], check=False)
    assert epochs_printed(resumed.stdout + resumed.stderr) == [2]
    history = metric_history(repo, env, train_run(repo), "resumed_from_update")
    assert history["status"] == "FINISHED" and len(history["resumed_from_update"]) == 1
