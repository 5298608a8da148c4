"""Shared fixtures: a project folder, and one of each expensive thing per session (helpers that are not
fixtures are in `helpers.py`).

- `ray_cluster`: a two-node Ray cluster on loopback (2 CPUs per node); every test that trains on Ray
  joins it (`RAY_ADDRESS`) instead of starting its own. Its worker node cannot read the sweep repo's
  `artifacts/` (`SWEEP_REPO`): the sweeps check that workers need no shared filesystem.
- `smoke_repo`: one copy of the working tree with the smoke pipeline run (`dvc repro` on the smoke
  profile) on that cluster: both tasks, and three of the five models (`SMOKE_LEFT_OUT`: an LSTM and
  a second Transformer add time, not paths). Read-only: a test that changes a repository works on
  `copy_repo` of it.
- `tracking_server`: one `mlflow server` on loopback, which a test may stop and start again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import (
    MIRROR,
    OUTAGE_EPOCHS,
    OUTAGE_S,
    ROOT,
    TRAIN,
    Outage,
    RayCluster,
    TrackingServer,
    clean_env,
    copy_repo,
    copy_worktree,
    epochs_printed,
    fingerprint,
    free_port,
    run,
    set_rnn_training,
    stop_server,
    sweep_repo_path,
)


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--reverse",
        action="store_true",
        help="run the tests in reverse order: no test may depend on another having run first",
    )


def pytest_collection_modifyitems(config, items) -> None:
    """Tests that use the session's Ray cluster (the smoke pipeline included) get the `shared` mark: `make test-ci`
    runs them in one pytest process and the others in a second one beside it (`-m shared` / `-m "not shared"`)."""
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)
    if config.getoption("--reverse"):
        items.reverse()


@pytest.fixture
def mirror() -> Path:
    if not (MIRROR / "multi30k").is_dir():
        pytest.skip(f"no corpus mirror at {MIRROR} (set SEQFORGE_DATA_MIRROR)")
    return MIRROR


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project folder (conf/ copied, default profile, no DVC) as the working directory."""
    from seqforge.config.base import set_profile

    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    set_profile("default", tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def conf_copy(tmp_path: Path) -> Path:
    """A writable copy of conf/ on the default profile (whatever the checkout's is) to edit in a test."""
    from seqforge.config.base import set_profile

    dest = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", dest)
    set_profile("default", dest)
    return dest


JOINED = """
import json, os, ray
ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
print(json.dumps(sum(n["Alive"] for n in ray.nodes())))
"""


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory) -> RayCluster:
    """Two Ray nodes on this machine, 2 CPUs each: a head (with the dashboard, whose state API frees a
    stopped trial's resources) and a worker node in its own mount namespace, where the sweep repo's
    `artifacts/` (`sweep_repo_path`) is an empty tmpfs. Needs root (`unshare -m`)."""
    logs = tmp_path_factory.mktemp("ray-nodes")
    hidden = sweep_repo_path(tmp_path_factory) / "artifacts"
    hidden.mkdir(parents=True)
    ray_bin, port = str(Path(sys.executable).with_name("ray")), free_port()
    env = clean_env()
    # the two nodes idle took 40 % of one of the 2 cores, 31 % without these (measured over 30 s): drivers
    # read no worker output (`log_to_driver=False`) and nobody scrapes metrics here
    nodes_env = {**env, "RAY_enable_metrics_collection": "0"}
    head = subprocess.Popen(
        [
            ray_bin,
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=true",
            f"--dashboard-port={free_port()}",
            "--disable-usage-stats",
            "--include-log-monitor=false",
        ],
        env=nodes_env,
        stdout=(logs / "head.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    hide = (
        f'mount -t tmpfs tmpfs "$0" && exec {ray_bin} start --block --address=127.0.0.1:{port} --num-cpus=2'
        " --include-log-monitor=false"
    )
    worker = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", hide, str(hidden)],
        env=nodes_env,
        stdout=(logs / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    cluster = RayCluster(f"127.0.0.1:{port}", {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"})
    try:
        deadline = time.monotonic() + 120
        while (
            joined := run([sys.executable, "-c", JOINED], logs, cluster.env, check=False)
        ).returncode != 0 or joined.stdout.strip().splitlines()[-1] != "2":
            assert time.monotonic() < deadline and None in (head.poll(), worker.poll()), (
                joined.stderr[-2000:],
                (logs / "worker.log").read_text()[-2000:],
            )
            time.sleep(2)
        yield cluster
    finally:
        for node in (worker, head):
            stop_server(node, grace=2)  # `ray start --block` takes its time over SIGTERM


SMOKE_LEFT_OUT = ("lstm_luong", "chatbot_transformer")  # experiments the tests' smoke pipeline does not train


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory, ray_cluster) -> tuple[Path, dict]:
    """A clone-like copy of the working tree (tracked + untracked, not ignored) with the smoke run done,
    and the environment its commands run in (the session's Ray cluster). Tests must not change it.
    Trimmed by configuration to gru_bahdanau and transformer (translation) and chatbot_gru_bahdanau."""
    if not (MIRROR / "multi30k").is_dir():
        pytest.skip(f"no corpus mirror at {MIRROR}")
    repo = copy_worktree(tmp_path_factory.mktemp("clone") / "seqforge")
    env = ray_cluster.env
    for name in SMOKE_LEFT_OUT:
        (repo / "conf" / "experiments" / f"{name}.yaml").unlink()
    run(["seqforge", "sync"], repo, env)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot"],
    ):
        run(cmd, repo, env)
    for cmd in (["seqforge", "profile", "smoke"], ["seqforge", "fetch"]):
        run(cmd, repo, env)
    repro = run(["dvc", "repro"], repo, env)
    (repo / "runs" / "repro.log").write_text(repro.stdout + repro.stderr)  # what the stages printed (runs/: not
    before = fingerprint(repo)  # fingerprinted)
    yield repo, env
    changed = sorted(set(before.items()) ^ set(fingerprint(repo).items()))
    assert not changed, f"a test changed the shared smoke repo (use smoke_copy): {changed[:10]}"


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory) -> tuple[Path, dict]:
    """A clone-like copy of the working tree under the smoke profile with every task's data fetched, prepared and
    tokenized, and nothing trained; its environment has no Ray cluster (a train stage starts a local Ray). For the
    tests that train on their own and need no trained smoke model or two-node cluster (`make test-ci` runs them
    beside the `shared` ones). Tests must not change it."""
    if not (MIRROR / "multi30k").is_dir():
        pytest.skip(f"no corpus mirror at {MIRROR}")
    repo, env = copy_worktree(tmp_path_factory.mktemp("data") / "seqforge"), clean_env()
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot"],
        ["seqforge", "profile", "smoke"],
        ["seqforge", "fetch"],
    ):
        run(cmd, repo, env)
    tasks = sorted(p.stem for p in (repo / "conf" / "tasks").glob("*.yaml"))
    run(["dvc", "repro", *(f"tokenize@{task}" for task in tasks)], repo, env)
    before = fingerprint(repo)
    yield repo, env
    changed = sorted(set(before.items()) ^ set(fingerprint(repo).items()))
    assert not changed, f"a test changed the shared smoke data repo: {changed[:10]}"


@pytest.fixture
def smoke_copy(smoke_repo, tmp_path) -> tuple[Path, dict]:
    """A copy of the smoke repo, its MLflow store included (without Ray's checkpoints), to change freely.
    Its store still keeps artifacts under the smoke repo's `mlartifacts/`: new runs add folders there."""
    repo, env = smoke_repo
    return copy_repo(repo, tmp_path / "seqforge", "runs"), env


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory) -> TrackingServer:
    """The session's one tracking server; a test that stops it starts it again before it returns."""
    server = TrackingServer(tmp_path_factory.mktemp("tracking-server"), clean_env())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def trained_on_server(smoke_data, tracking_server, tmp_path_factory) -> tuple[Path, dict, Outage]:
    """A copy of `smoke_data` (a local Ray for its train stage) whose gru_bahdanau stages ran through the session's
    tracking server: `train` (OUTAGE_EPOCHS epochs, a metric every 5 updates) with the server stopped once
    the first epoch is in, for OUTAGE_S seconds and at least two more epochs (however fast the machine),
    then `evaluate` and `register` (DVC) and `promote` (@champion). The training the tracking-server
    tests browse is the one that went through an outage."""
    smoke, smoke_env = smoke_data
    repo = copy_repo(smoke, tmp_path_factory.mktemp("on-server") / "seqforge")
    env = {**smoke_env, "MLFLOW_TRACKING_URI": tracking_server.url}
    set_rnn_training(
        repo, max_epochs=OUTAGE_EPOCHS, early_stopping_patience=50, log_every_n_steps=5, max_time="00:00:10:00"
    )
    log = repo / "outage.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(TRAIN, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while not epochs_printed(log.read_text()):
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        before, stopped = epochs_printed(log.read_text()), time.monotonic()
        tracking_server.stop()  # it answers nothing from SIGTERM on; its workers may take a while to exit
        while time.monotonic() - stopped < OUTAGE_S or len(epochs_printed(log.read_text())) < len(before) + 2:
            assert time.monotonic() - stopped < 300 and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        during = epochs_printed(log.read_text())
        tracking_server.start()
        assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    run(["dvc", "repro", "--single-item", "evaluate@gru_bahdanau", "register@gru_bahdanau"], repo, env)
    run(["seqforge", "promote", "translation-en-de"], repo, env)
    return repo, env, Outage(before, during, log.read_text())
