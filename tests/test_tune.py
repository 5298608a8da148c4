"""Sweeps: search-space validation, the winner file, and (slow) a sweep and training on a two-node Ray
cluster whose worker node cannot read the repository's tokenized data."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from seqforge.config.base import ConfigError
from seqforge.config.shared import load_config
from seqforge.experiments.config import load_experiment
from seqforge.research.tune import trial_train_cfg
from seqforge.research.tune_config import load_tune
from seqforge.research.tune_results import write_tuned


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("optim.lr: {loguniform: [0, 0.01]}", "space.optim.lr: loguniform needs low > 0"),
        ("optim.lr: {normal: [0.001, 0.1]}", "space.optim.lr: expected one of choice, uniform, loguniform, randint"),
        ("model.dropout: {uniform: [0.4, 0.1]}", "space.model.dropout: uniform needs low < high"),
        ("model.enc_layers: {randint: [1, 2.5]}", "space.model.enc_layers: randint needs integers"),
        ("model.cell: {choice: []}", "space.model.cell: choice needs at least one value"),
        ("seed: {choice: [1, 2]}", "space.seed: keys are dotted paths under model, optim, train"),
    ],
)
def test_bad_domain_is_refused_naming_the_key(conf_copy, domain: str, message: str) -> None:
    path = conf_copy / "tune" / "gru_bahdanau.yaml"
    path.write_text(path.read_text() + f"  {domain}\n")
    with pytest.raises(ConfigError) as err:
        load_tune("gru_bahdanau", conf_copy)
    assert str(path) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize(
    ("domain", "key"),
    [
        ("model.hidden_dimm: {choice: [128]}", "model.hidden_dimm"),  # no such field
        ("model.cell: {choice: [cnn, gru]}", "model.cell"),  # a value the experiment refuses
        ("train.batch_tokenz: {choice: [1000]}", "batch_tokenz"),  # no such train setting
    ],
)
def test_space_keys_must_exist_in_the_experiment(conf_copy, domain: str, key: str) -> None:
    path = conf_copy / "tune" / "gru_bahdanau.yaml"
    path.write_text(path.read_text() + f"  {domain}\n")
    with pytest.raises(ConfigError) as err:
        load_tune("gru_bahdanau", conf_copy)
    assert f"space.{domain.split(':')[0]}" in str(err.value) and key in str(err.value)


def test_shipped_sweeps_are_valid(conf_copy) -> None:
    conf = conf_copy
    for path in (conf / "tune").glob("*.yaml"):
        tune, _ = load_tune(path.stem, conf)
        assert tune.space and tune.train["max_epochs"] >= tune.scheduler.grace_period
    assert yaml.safe_load((ROOT / "sweeps" / "dvc.yaml").read_text())["stages"]["tune"]["foreach"] == "${sweeps}"
    sweeps = yaml.safe_load((ROOT / "conf" / "pipeline.yaml").read_text())["sweeps"]
    assert set(sweeps) == {p.stem for p in (conf / "tune").glob("*.yaml")}


def test_cluster_profile_puts_checkpoints_and_sweep_state_on_shared_storage(conf_copy) -> None:
    from seqforge.config.base import set_profile

    set_profile("cluster", conf_copy)
    tune, _ = load_tune("gru_bahdanau", conf_copy)
    assert tune.storage_path.startswith("/mnt/shared/") and tune.space  # the sweep file, overlaid
    assert load_config(conf_copy).train.storage_path.startswith("/mnt/shared/")


def test_trial_settings_precedence(conf_copy) -> None:
    """global train < experiment's train < the sweep's train < a sampled train.* value."""
    tune, exp = load_tune("transformer", conf_copy)  # the experiment sets max_time
    base = load_config(conf_copy).train.model_dump()
    cfg = trial_train_cfg(base, exp, tune)
    assert cfg.max_time is None and cfg.max_epochs == tune.train["max_epochs"]  # the sweep's, not 34 min
    assert cfg.storage_path == tune.storage_path
    sampled = exp.model_copy(update={"train": {**exp.train, "batch_tokens": 8000}})
    assert trial_train_cfg(base, sampled, tune).batch_tokens == 8000


def test_winner_file_is_applied_by_the_train_stage_config(conf_copy) -> None:
    summary = {
        "sweep": "tune-gru_bahdanau-x",
        "parent_run_id": "abc123",
        "metric": "val_bleu",
        "best": {
            "trial_id": "t1",
            "run_id": "r1",
            "value": 31.23456,
            "config": {"model.cell": "lstm", "optim.lr": 0.0007, "train.batch_tokens": 4000},
        },
    }
    path = write_tuned("gru_bahdanau", summary, conf_copy)
    written = yaml.safe_load(path.read_text())
    assert written["sweep"]["mlflow_run_id"] == "abc123" and written["sweep"]["value"] == 31.2346
    exp = load_experiment("gru_bahdanau", conf_copy)
    assert exp.model.cell == "lstm" and exp.optim.lr == 0.0007 and exp.tuned_from == "abc123"
    assert exp.model.attention == "bahdanau"  # untouched keys keep the experiment's values
    assert exp.train_config(load_config(conf_copy).train).batch_tokens == 4000


SMOKE_SWEEP = """\
num_samples: 4
storage_path: runs/tune
search: {algorithm: optuna, seed: 10}   # draws, in order: impossible, slow, fast, slow
scheduler: {grace_period: 1, reduction_factor: 2}
train: {num_workers: 2, max_epochs: 3, max_time: null, early_stopping_patience: 3}
space:
  model.hidden_dim: {choice: [16, 32]}
  model.emb_dim: {choice: [16, 0]}        # 0 is an impossible size: those trials fail, the sweep goes on
  optim.lr: {choice: [1.0e-2, 1.0e-6]}    # 1e-6 barely learns: ASHA stops such trials after one epoch
"""
SWEPT = "chatbot_gru_bahdanau"  # selected on validation loss, which moves even on smoke data

CHILDREN = """
import json, sys, mlflow
client = mlflow.MlflowClient('sqlite:///mlflow.db')
exp = client.get_experiment_by_name('seqforge')
runs = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{sys.argv[1]}'")
print(json.dumps([{'trial': r.data.tags['trial_id'], 'status': r.info.status, 'end': r.info.end_time,
                  'tags': r.data.tags, 'epochs': len(client.get_metric_history(r.info.run_id, 'val_loss'))}
                  for r in runs]))
"""


HIDDEN_ON_WORKER = """
import json, os, sys, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
listing = ray.remote(lambda path: sorted(os.listdir(path)) if os.path.isdir(path) else None)
print(json.dumps({node: ray.get(listing.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                                .remote(sys.argv[1])) for node in nodes}))
"""


def children(repo, env, parent_run_id: str) -> dict[str, dict]:
    """The sweep's MLflow child runs by trial id."""
    import sys

    from helpers import run

    return {r["trial"]: r for r in json.loads(run([sys.executable, "-c", CHILDREN, parent_run_id], repo, env).stdout)}


def finished_trials(repo, swept: str) -> dict[str, int]:
    """Trials the sweep's saved Tune state records as finished (what `--resume` keeps), with their epochs."""
    done = {}
    for path in (repo / "runs" / "tune").glob(f"tune-{swept}-*/experiment_state-*.json"):
        try:  # each entry: the trial's state and its run metadata (the last result among it), as JSON
            trials = [
                (json.loads(state), json.loads(meta)) for state, meta in json.loads(path.read_text())["trial_data"]
            ]
        except (ValueError, KeyError):  # being rewritten
            continue
        done |= {
            t["trial_id"]: int((meta.get("last_result") or {}).get("training_iteration", 0))
            for t, meta in trials
            if t["status"] == "TERMINATED"
        }
    return done


@dataclass(frozen=True)
class Sweep:
    repo: Path
    env: dict
    parent: str  # the sweep's MLflow parent run
    finished: dict[str, int]  # trials finished when the driver was killed -> their epochs
    before: dict[str, dict]  # the child runs then
    resumed: str  # `seqforge tune --resume`'s output


@pytest.fixture(scope="module")
def sweep(smoke_repo, ray_cluster, tmp_path_factory) -> Sweep:
    """The smoke sweep of SWEPT on the session's two Ray nodes, in a copy of the smoke repo whose
    `artifacts/` the worker node cannot read (`sweep_repo_path`): killed (the driver, SIGKILL) once a
    trial was stopped early, then resumed with `seqforge tune --resume`. Both sweep tests assert on it."""
    import os
    import signal
    import sys

    from helpers import copy_repo, run, sweep_repo_path

    smoke, env = smoke_repo
    repo = copy_repo(smoke, sweep_repo_path(tmp_path_factory), "runs")
    listing = run([sys.executable, "-c", HIDDEN_ON_WORKER, str(repo / "artifacts")], repo, env)
    seen = json.loads(listing.stdout.strip().splitlines()[-1])
    assert sorted(map(bool, seen.values())) == [False, True], seen  # the worker node sees an empty artifacts/
    (repo / "conf" / "tune" / f"{SWEPT}.yaml").write_text(SMOKE_SWEEP)
    max_epochs = yaml.safe_load(SMOKE_SWEEP)["train"]["max_epochs"]
    with open(repo / "first.log", "w") as log:
        first = subprocess.Popen(
            ["seqforge", "tune", SWEPT], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + 600
        while not any(epochs < max_epochs for epochs in finished_trials(repo, SWEPT).values()):
            assert first.poll() is None, (
                "the sweep ended before ASHA stopped a trial: nothing left to interrupt",
                (repo / "first.log").read_text()[-3000:],
            )
            assert time.time() < deadline, "no trial stopped early within 600 s"
            time.sleep(0.5)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    parent = json.loads((repo / "runs" / "tune" / f"{SWEPT}.latest.json").read_text())["parent_run_id"]
    before = children(repo, env, parent)
    finished = finished_trials(repo, SWEPT)  # what the restored sweep knows as done
    resumed = run(["seqforge", "tune", SWEPT, "--resume"], repo, env).stdout
    return Sweep(repo, env, parent, finished, before, resumed)


@pytest.mark.slow
@pytest.mark.nightly
def test_sweep_on_two_nodes_stops_fails_and_feeds_the_next_train(sweep) -> None:
    from helpers import run

    repo, env = sweep.repo, sweep.env
    summary = json.loads((repo / "reports" / "tune" / f"{SWEPT}.json").read_text())
    runs = children(repo, env, summary["parent_run_id"])

    assert "4 trials" in sweep.resumed and len(summary["trials"]) == 4
    assert {t["trial_id"] for t in summary["trials"]} <= set(runs)  # one child run per trial
    for trial in summary["trials"]:
        assert runs[trial["trial_id"]]["tags"]["trial_status"] == trial["status"]
    counts = summary["counts"]
    assert counts["failed"] >= 1 and counts["stopped_early"] >= 1 and counts["completed"] >= 1, counts
    for trial in summary["trials"]:
        r = runs[trial["trial_id"]]
        status = r["tags"]["trial_status"]
        assert r["status"] == {"failed": "FAILED", "stopped_early": "KILLED", "completed": "FINISHED"}[status]
        assert status != "failed" or "emb_dim" in r["tags"]["error"]
        assert status != "stopped_early" or r["epochs"] < 3
    # a trial the kill interrupted reruns on whichever node is free, and its tags then name that node:
    # the nodes are those of the child runs before the kill and after the resume together
    nodes = {
        v
        for snapshot in (sweep.before, runs)
        for r in snapshot.values()
        for k, v in r["tags"].items()
        if k.startswith("ray.worker")
    }
    assert len(nodes) == 2, "trials ran on both nodes"
    assert runs[summary["best"]["trial_id"]]["tags"]["best_trial"] == "true"

    winner = yaml.safe_load((repo / "conf" / "tuned" / f"{SWEPT}.yaml").read_text())
    assert winner["sweep"]["mlflow_run_id"] == summary["parent_run_id"]
    assert winner["overrides"]["optim"]["lr"] == 1.0e-2 and winner["overrides"]["model"]["emb_dim"] == 16
    run(["dvc", "repro", "resolve"], repo, env)  # the winner enters train@'s resolved configuration
    assert f"train@{SWEPT}" in run(["dvc", "status", "dvc.yaml"], repo, env).stdout
    run(["dvc", "repro", "--single-item", f"train@{SWEPT}"], repo, env)
    trained = json.loads((repo / "models" / SWEPT / "model.json").read_text())["experiment"]
    assert trained["tuned_from"] == summary["parent_run_id"]
    assert trained["model"]["hidden_dim"] == winner["overrides"]["model"]["hidden_dim"]


@pytest.mark.slow
@pytest.mark.nightly
def test_killed_sweep_resumes_without_rerunning_finished_trials(sweep) -> None:
    repo, env = sweep.repo, sweep.env
    summary = json.loads((repo / "reports" / "tune" / f"{SWEPT}.json").read_text())
    after = children(repo, env, sweep.parent)
    assert summary["parent_run_id"] == sweep.parent and "4 trials" in sweep.resumed, sweep.resumed
    assert sweep.finished, "no trial had finished when the driver was killed"
    for trial in sweep.finished:  # not run again: no epoch logged since, and a finished run not reopened
        assert after[trial]["epochs"] == sweep.before[trial]["epochs"]
        assert sweep.before[trial]["end"] is None or after[trial]["end"] == sweep.before[trial]["end"]
    in_sweep = {t["trial_id"] for t in summary["trials"]}
    assert set(sweep.finished) <= in_sweep and in_sweep <= set(after)
    for trial, r in after.items():  # a trial the killed driver was starting, unknown after restore
        assert trial in in_sweep or (r["tags"]["trial_status"] == "interrupted" and r["status"] != "RUNNING")
