"""Tracking faults. Against the session's real `mlflow server` on loopback, started as docs/guides/serving.md shows
(SQLite backend, artifacts served by the server, its default workers): the server stopped for 20 s or
more while a model trains (`trained_on_server`, which the tracking-server tests browse); registering while it is
down; four sweep trials logging to it at once. And, on the local store, a model upload cut off half-way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import (
    OUTAGE_EPOCHS,
    OUTAGE_S,
    TrackingServer,
    copy_repo,
    epochs_printed,
    metric_history,
    run,
    train_run,
)

pytestmark = pytest.mark.slow

MODEL = "translation-en-de"
VERSIONS = f"""
import json, mlflow
from seqforge.tracking.client import tracking_uri
print(json.dumps([v.version for v in mlflow.MlflowClient(tracking_uri()).search_model_versions("name = '{MODEL}'")]))
"""
SWEEP = """\
num_samples: 4
storage_path: runs/tune
search: {algorithm: random, seed: 0}
scheduler: {grace_period: 2, reduction_factor: 2}      # no early stop: every trial runs its 2 epochs
train: {num_workers: 1, max_epochs: 2, max_time: null, early_stopping_patience: 2}
space:
  model.hidden_dim: {choice: [16, 32]}
  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}
"""
TRIALS = """
import json, sys, mlflow
from seqforge.tracking.client import tracking_uri
client = mlflow.MlflowClient(tracking_uri())
exp = client.get_experiment_by_name('seqforge')
runs = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{sys.argv[1]}'")
print(json.dumps([{'status': r.info.status, 'start': r.info.start_time, 'end': r.info.end_time,
                   'trial_status': r.data.tags.get('trial_status'),
                   'nodes': sorted({v for k, v in r.data.tags.items() if k.startswith('ray.worker')}),
                   'epochs': len(client.get_metric_history(r.info.run_id, 'val_loss'))} for r in runs]))
"""


@pytest.fixture
def served(smoke_repo, tracking_server, tmp_path) -> tuple[Path, dict, TrackingServer]:
    """(repo, env, server): a copy of the smoke repo without its local store, pointed at the session's server."""
    smoke, smoke_env = smoke_repo
    repo = copy_repo(smoke, tmp_path / "seqforge", "mlflow.db", "mlartifacts", "runs")
    return repo, {**smoke_env, "MLFLOW_TRACKING_URI": tracking_server.url}, tracking_server


def test_training_goes_on_through_a_server_outage_and_no_metric_is_lost(trained_on_server) -> None:
    """`trained_on_server`'s training: the server stopped for 20 s and two epochs or more once its first
    epoch was in; the outage is noticed (15 s), training goes on, and every metric arrives once."""
    repo, env, outage = trained_on_server
    assert len(outage.during) >= len(outage.before) + 2, (
        f"training stalled while the server was down: {outage.before} -> {outage.during}"
    )
    output = outage.output
    assert "MLflow tracking server not answering" in output and "MLflow tracking server back" in output
    assert epochs_printed(output) == list(range(1, OUTAGE_EPOCHS + 1))

    history = metric_history(repo, env, train_run(repo), "val_loss", "train_loss_step")
    steps_per_epoch = history["val_loss"][0][0] + 1
    assert [step for step, _ in history["val_loss"]] == [(e + 1) * steps_per_epoch - 1 for e in range(OUTAGE_EPOCHS)]
    expected = [s for s in range(OUTAGE_EPOCHS * steps_per_epoch) if (s + 1) % 5 == 0]
    assert [step for step, _ in history["train_loss_step"]] == expected  # every logged step, once, in order
    print(
        f"server down {OUTAGE_S} s from epoch {outage.before[-1]} to {outage.during[-1]} of {OUTAGE_EPOCHS}: "
        f"all {len(expected)} train_loss_step and {OUTAGE_EPOCHS} val_loss values in MLflow"
    )


def test_registering_with_the_server_down_fails_clearly_and_registers_nothing(served) -> None:
    repo, env, server = served
    before = run([sys.executable, "-c", VERSIONS], repo, env).stdout  # the session's server may hold versions
    server.stop()
    try:
        register = run(
            [sys.executable, "-m", "pipelines.register", "gru_bahdanau"],
            repo,
            {**env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
            check=False,
        )
    finally:
        server.start()
    assert register.returncode == 1 and "Traceback" not in register.stderr, register.stderr[-2000:]
    assert register.stderr.startswith(f"register: cannot use the MLflow tracking store at {server.url}")
    assert run([sys.executable, "-c", VERSIONS], repo, env).stdout == before


@pytest.mark.parametrize("failure", ["raises", "silent"])
def test_an_upload_cut_off_half_way_registers_no_version(smoke_repo, tmp_path, monkeypatch, failure: str) -> None:
    """The model's weights reach the (local) artifact store cut to half; the upload raises, or
    returns as if it had worked. Either way: a clear error and no model version."""
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    from seqforge.stages.register import register_experiment
    from seqforge.tracking.client import TrackingError

    smoke, env = smoke_repo
    repo = copy_repo(smoke, tmp_path / "seqforge", "runs")
    before = run([sys.executable, "-c", VERSIONS], repo, env).stdout
    upload = LocalArtifactRepository.log_artifacts

    def cut_off(self, local_dir, artifact_path=None):
        upload(self, local_dir, artifact_path)
        for weights in Path(self.artifact_dir).rglob("model.pt"):
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
            if failure == "raises":
                raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(LocalArtifactRepository, "log_artifacts", cut_off)
    monkeypatch.chdir(repo)
    for key in [k for k in env if k.startswith("MLFLOW_")] + ["MLFLOW_TRACKING_URI"]:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(TrackingError, match="no model version registered") as err:
        register_experiment("gru_bahdanau")
    assert ("connection reset" in str(err.value)) == (failure == "raises"), err.value
    assert failure == "raises" or "model.pt missing or cut short" in str(err.value)
    assert run([sys.executable, "-c", VERSIONS], repo, env).stdout == before


def test_four_concurrent_sweep_trials_log_every_epoch_to_one_server(served, ray_cluster) -> None:
    """The session's two Ray nodes (2 CPUs each, on 2 cores) run 4 one-worker trials at once, all logging
    to the server."""
    import json

    repo, env, server = served
    (repo / "conf" / "tune" / "gru_bahdanau.yaml").write_text(SWEEP)
    out = run(["seqforge", "tune", "gru_bahdanau"], repo, env)
    summary = json.loads((repo / "reports" / "tune" / "gru_bahdanau.json").read_text())
    trials = json.loads(run([sys.executable, "-c", TRIALS, summary["parent_run_id"]], repo, env).stdout)
    assert len(trials) == 4 and summary["counts"]["completed"] == 4, (out.stdout[-2000:], trials)
    assert all(t["status"] == "FINISHED" and t["trial_status"] == "completed" and t["epochs"] == 2 for t in trials)
    assert max(t["start"] for t in trials) < min(t["end"] for t in trials), "the 4 trials ran at once"
    assert len({node for t in trials for node in t["nodes"]}) == 2, "trials ran on both Ray nodes"
    logs = out.stdout + out.stderr + server.log()
    assert "database is locked" not in logs
