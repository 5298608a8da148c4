"""Sweeps: search-space validation, the winner file, and (slow) a sweep and training on a two-node Ray
cluster whose worker node cannot read the repository's tokenized data."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from seqforge.config import ConfigError, load_config, load_experiment, load_tune
from seqforge.tune import trial_train_cfg, write_tuned


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


def test_shipped_sweeps_are_valid() -> None:
    conf = ROOT / "conf"
    for path in (conf / "tune").glob("*.yaml"):
        tune, _ = load_tune(path.stem, conf)
        assert tune.space and tune.train["max_epochs"] >= tune.scheduler.grace_period
    sweeps = yaml.safe_load((ROOT / "sweeps" / "dvc.yaml").read_text())["stages"]["tune"]["foreach"]
    assert set(sweeps) == {p.stem for p in (conf / "tune").glob("*.yaml")}


def test_cluster_profile_puts_checkpoints_and_sweep_state_on_shared_storage(conf_copy) -> None:
    from seqforge.config import set_profile

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
    summary = {"sweep": "tune-gru_bahdanau-x", "parent_run_id": "abc123", "metric": "val_bleu",
               "best": {"trial_id": "t1", "run_id": "r1", "value": 31.23456,
                        "config": {"model.cell": "lstm", "optim.lr": 0.0007, "train.batch_tokens": 4000}}}
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
head = ray.get_runtime_context().get_node_id()
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
listing = ray.remote(lambda path: sorted(os.listdir(path)) if os.path.isdir(path) else None)
print(json.dumps({node: ray.get(listing.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                                .remote(sys.argv[1])) for node in nodes}))
"""


@pytest.fixture(scope="module")
def sweep_repo(smoke_repo, tmp_path_factory):
    """A copy of the smoke repo, and its environment pointed at a two-node Ray cluster on this machine
    (2 CPUs each) with no shared filesystem for the data: the worker node runs in its own mount
    namespace, where the repository's `artifacts/` is an empty tmpfs. Needs root (`unshare -m`)."""
    import sys

    from conftest import copy_repo, free_port, run, stop_server

    smoke, smoke_env = smoke_repo
    repo = copy_repo(smoke, tmp_path_factory.mktemp("sweep") / "seqforge", "runs")
    ray_bin = str(Path(sys.executable).with_name("ray"))
    port = free_port()
    logs = tmp_path_factory.mktemp("ray-nodes")
    smoke_env = {**smoke_env, "RAY_AUTH_MODE": "disabled"}  # loopback only; a real cluster shares a token
    # the head runs the dashboard: Ray Train's state API frees the resources of trials ASHA stops
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=true", f"--dashboard-port={free_port()}", "--disable-usage-stats"],
                            env=smoke_env, stdout=(logs / "head.log").open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    hide = f'mount -t tmpfs tmpfs "$0" && exec {ray_bin} start --block --address=127.0.0.1:{port} --num-cpus=2'
    worker = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", hide,
                               str(repo / "artifacts")], env=smoke_env, stdout=(logs / "worker.log").open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    env = {**smoke_env, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    try:
        deadline = time.monotonic() + 120
        while True:  # both nodes up; the worker node sees an empty artifacts/, the head the real one
            listing = run([sys.executable, "-c", HIDDEN_ON_WORKER, str(repo / "artifacts")], repo, env, check=False)
            seen = json.loads(listing.stdout.strip().splitlines()[-1]) if listing.returncode == 0 else {}
            if len(seen) == 2:
                break
            assert time.monotonic() < deadline and None in (head.poll(), worker.poll()), (
                listing.stderr[-2000:], (logs / "worker.log").read_text()[-2000:])
            time.sleep(2)
        assert sorted(map(bool, seen.values())) == [False, True], seen
        yield repo, env
    finally:
        for node in (worker, head):
            stop_server(node)


def children(repo, env, parent_run_id: str) -> dict[str, dict]:
    """The sweep's MLflow child runs by trial id."""
    import json
    import sys

    from conftest import run

    return {r["trial"]: r for r in json.loads(run([sys.executable, "-c", CHILDREN, parent_run_id], repo, env).stdout)}


@pytest.mark.slow
def test_sweep_on_two_nodes_stops_fails_and_feeds_the_next_train(sweep_repo) -> None:
    import json

    from conftest import run

    repo, env = sweep_repo
    swept = "chatbot_gru_bahdanau"  # selected on validation loss, which moves even on smoke data
    (repo / "conf" / "tune" / f"{swept}.yaml").write_text(SMOKE_SWEEP)
    # a trial still holding its CPUs after ASHA's stop would hang the sweep (run()'s timeout fails it)
    out = run(["seqforge", "tune", swept], repo, env).stdout
    summary = json.loads((repo / "reports" / "tune" / f"{swept}.json").read_text())
    runs = children(repo, env, summary["parent_run_id"])

    assert "4 trials" in out and len(summary["trials"]) == 4
    assert set(runs) == {t["trial_id"] for t in summary["trials"]}  # one child run per trial
    for trial in summary["trials"]:
        assert runs[trial["trial_id"]]["tags"]["trial_status"] == trial["status"]
    counts = summary["counts"]
    assert counts["failed"] >= 1 and counts["stopped_early"] >= 1 and counts["completed"] >= 1, counts
    for r in runs.values():
        status = r["tags"]["trial_status"]
        assert r["status"] == {"failed": "FAILED", "stopped_early": "KILLED", "completed": "FINISHED"}[status]
        assert status != "failed" or "emb_dim" in r["tags"]["error"]
        assert status != "stopped_early" or r["epochs"] < 3
    nodes = {v for r in runs.values() for k, v in r["tags"].items() if k.startswith("ray.worker")}
    assert len(nodes) == 2, "trials ran on both nodes"
    assert runs[summary["best"]["trial_id"]]["tags"]["best_trial"] == "true"

    winner = yaml.safe_load((repo / "conf" / "tuned" / f"{swept}.yaml").read_text())
    assert winner["sweep"]["mlflow_run_id"] == summary["parent_run_id"]
    assert winner["overrides"]["optim"]["lr"] == 1.0e-2 and winner["overrides"]["model"]["emb_dim"] == 16
    run(["dvc", "repro", "resolve"], repo, env)  # the winner enters train@'s resolved configuration
    assert f"train@{swept}" in run(["dvc", "status", "dvc.yaml"], repo, env).stdout
    run(["dvc", "repro", "--single-item", f"train@{swept}"], repo, env)
    trained = json.loads((repo / "models" / swept / "model.json").read_text())["experiment"]
    assert trained["tuned_from"] == summary["parent_run_id"]
    assert trained["model"]["hidden_dim"] == winner["overrides"]["model"]["hidden_dim"]


def terminated_trials(repo, swept: str) -> set[str]:
    """Trials the sweep's saved Tune state records as finished (what `--resume` keeps)."""
    import json

    done = set()
    for path in (repo / "runs" / "tune").glob(f"tune-{swept}-*/experiment_state-*.json"):
        try:
            trials = [json.loads(entry[0]) for entry in json.loads(path.read_text())["trial_data"]]
        except (ValueError, KeyError):  # being rewritten
            continue
        done |= {t["trial_id"] for t in trials if t["status"] == "TERMINATED"}
    return done


@pytest.mark.slow
def test_killed_sweep_resumes_without_rerunning_finished_trials(sweep_repo) -> None:
    import json
    import os
    import signal
    import subprocess
    import time

    from conftest import run

    repo, env = sweep_repo
    swept = "gru_bahdanau"
    (repo / "conf" / "tune" / f"{swept}.yaml").write_text(SMOKE_SWEEP)
    with open(repo / "first.log", "w") as log:
        first = subprocess.Popen(["seqforge", "tune", swept], cwd=repo, env=env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 300
        while not terminated_trials(repo, swept):
            assert first.poll() is None, (repo / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "no trial finished within 300 s"
            time.sleep(0.5)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    parent = json.loads((repo / "runs" / "tune" / f"{swept}.latest.json").read_text())["parent_run_id"]
    before = children(repo, env, parent)
    finished = terminated_trials(repo, swept)  # what the restored sweep knows as done

    resumed = run(["seqforge", "tune", swept, "--resume"], repo, env)
    summary = json.loads((repo / "reports" / "tune" / f"{swept}.json").read_text())
    after = children(repo, env, parent)
    assert summary["parent_run_id"] == parent and "4 trials" in resumed.stdout, resumed.stdout
    for trial in finished:  # not run again: no epoch logged since, and a finished run not reopened
        assert after[trial]["epochs"] == before[trial]["epochs"]
        assert before[trial]["end"] is None or after[trial]["end"] == before[trial]["end"]
    in_sweep = {t["trial_id"] for t in summary["trials"]}
    assert finished <= in_sweep and in_sweep <= set(after)
    for trial, r in after.items():  # a trial the killed driver was starting, unknown after restore
        assert trial in in_sweep or (r["tags"]["trial_status"] == "interrupted" and r["status"] != "RUNNING")
