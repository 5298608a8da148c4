"""Shared fixtures: the repository root, the corpus mirror, and one of each expensive thing per session.

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

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("SEQFORGE_DATA_MIRROR", ROOT.parent / "shared" / "data")).resolve()


def pytest_addoption(parser) -> None:
    parser.addoption("--reverse", action="store_true",
                     help="run the tests in reverse order: no test may depend on another having run first")


def pytest_collection_modifyitems(config, items) -> None:
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


def pairs_of(corpus, root: Path, task, tmp_path: Path):
    """(DatasetDict, stats) that the prepare stage builds for `task` from `corpus` files in `root`."""
    from seqforge.corpora.registry import read_corpus
    from seqforge.tasks.registry import task_kind

    return task_kind(task.kind).pairs(read_corpus(corpus, root, tmp_path / "cache"), task, corpus, tmp_path / "cache")


def run(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command to completion; unless `check=False`, a failure shows its output's tail."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def clean_env() -> dict:
    """This process's environment without the settings that would send a test's stages elsewhere (an
    MLflow store, a Ray cluster, an object store), with the venv's commands first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "RAY_ADDRESS", "AWS_", "SEQFORGE_RAY", "SEQFORGE_KILL"))}
    env.update(SEQFORGE_DATA_MIRROR=str(MIRROR), MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
               RAY_AUTH_MODE="disabled",  # loopback only; a real cluster shares a token
               RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="0.5",  # a reported checkpoint is registered sooner (default 2 s)
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return env


@dataclass(frozen=True)
class RayCluster:
    address: str
    env: dict  # a driver's environment on this cluster (`RAY_ADDRESS` set)


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
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=true", f"--dashboard-port={free_port()}", "--disable-usage-stats"],
                            env=env, stdout=(logs / "head.log").open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    hide = f'mount -t tmpfs tmpfs "$0" && exec {ray_bin} start --block --address=127.0.0.1:{port} --num-cpus=2'
    worker = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", hide, str(hidden)],
                              env=env, stdout=(logs / "worker.log").open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    cluster = RayCluster(f"127.0.0.1:{port}", {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"})
    try:
        deadline = time.monotonic() + 120
        while (joined := run([sys.executable, "-c", JOINED], logs, cluster.env, check=False)).returncode != 0 \
                or joined.stdout.strip().splitlines()[-1] != "2":
            assert time.monotonic() < deadline and None in (head.poll(), worker.poll()), (
                joined.stderr[-2000:], (logs / "worker.log").read_text()[-2000:])
            time.sleep(2)
        yield cluster
    finally:
        for node in (worker, head):
            stop_server(node, grace=2)  # `ray start --block` takes its time over SIGTERM


def sweep_repo_path(tmp_path_factory) -> Path:
    """Where the sweep tests' copy of the smoke repo goes (the worker node hides its `artifacts/`)."""
    return tmp_path_factory.getbasetemp() / "sweep" / "seqforge"


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
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot"]):
        run(cmd, repo, env)
    for cmd in (["seqforge", "profile", "smoke"], ["seqforge", "fetch"]):
        run(cmd, repo, env)
    repro = run(["dvc", "repro"], repo, env)
    (repo / "runs" / "repro.log").write_text(repro.stdout + repro.stderr)  # what the stages printed (runs/: not
    before = fingerprint(repo)                                            # fingerprinted)
    yield repo, env
    changed = sorted(set(before.items()) ^ set(fingerprint(repo).items()))
    assert not changed, f"a test changed the shared smoke repo (use smoke_copy): {changed[:10]}"


def fingerprint(repo: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file of `repo` but git's, DVC's, Ray's and the plans' scratch, bytecode, and
    the `registered_model_meta` files MLflow writes into a local store whenever a registered model loads."""
    skip = (repo / ".git", repo / ".dvc" / "tmp", repo / "runs", repo / ".seqforge")
    return {str(p.relative_to(repo)): (p.stat().st_size, p.stat().st_mtime_ns) for p in repo.rglob("*")
            if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts
            and p.name != "registered_model_meta" and not any(p.is_relative_to(s) for s in skip)}


@pytest.fixture
def smoke_copy(smoke_repo, tmp_path) -> tuple[Path, dict]:
    """A copy of the smoke repo, its MLflow store included (without Ray's checkpoints), to change freely.
    Its store still keeps artifacts under the smoke repo's `mlartifacts/`: new runs add folders there."""
    repo, env = smoke_repo
    return copy_repo(repo, tmp_path / "seqforge", "runs"), env


class TrackingServer:
    """`mlflow server` on a fixed loopback port (SQLite backend, artifacts stored and served by the
    server, its default workers), which a test can stop and start again."""

    def __init__(self, base: Path, env: dict) -> None:
        self.base, self.env, self.port = base, env, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = base / "artifacts"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = start_server(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.base / 'server.db'}",
             "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port)],
            self.base, self.env, f"{self.url}/health", log_path=self.base / "server.log")

    def stop(self) -> None:
        stop_server(self.proc)

    def log(self) -> str:
        return (self.base / "server.log").read_text()


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory) -> TrackingServer:
    """The session's one tracking server; a test that stops it starts it again before it returns."""
    server = TrackingServer(tmp_path_factory.mktemp("tracking-server"), clean_env())
    server.start()
    yield server
    server.stop()


def copy_worktree(repo: Path) -> Path:
    """What a clone of the working tree holds (tracked and untracked files, not ignored ones), at `repo`."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    return repo


def copy_repo(repo: Path, dest: Path, *leave_out: str) -> Path:
    """A copy of `repo` at `dest` (links kept; `dest` may exist, empty), without its top-level entries `leave_out`.
    Its MLflow store, if copied, is its own: runs and models point at the copy's `mlartifacts/`."""
    shutil.copytree(repo, dest, symlinks=True, dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if Path(d) == repo and n in leave_out])
    if (dest / "mlflow.db").is_file():
        relocate_store(dest / "mlflow.db", repo, dest)
    return dest


def relocate_store(db: Path, old: Path, new: Path) -> None:
    """Point every location an MLflow SQLite store records under `old` (experiments' artifact roots,
    runs' and models' artifact URIs) at the same place under `new`."""
    import sqlite3

    with sqlite3.connect(db) as con:
        tables = [row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for _, column, kind, *_ in con.execute(f'PRAGMA table_info("{table}")').fetchall():
                if kind.upper().startswith(("VARCHAR", "TEXT")):
                    con.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE "{column}" LIKE ?',
                                (str(old), str(new), f"%{old}%"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(cmd: list[str], cwd: Path, env: dict, health_url: str, timeout: float = 120,
                 log_path: Path | None = None) -> subprocess.Popen:
    """Start a server process and wait until `health_url` answers; the caller terminates it. Its
    output goes to `log_path` (appended), else to a temporary file."""
    import tempfile
    import time
    import urllib.request

    # not a pipe: a chatty server must never block on it
    log = open(log_path, "a+") if log_path else tempfile.TemporaryFile("w+")  # noqa: SIM115 -- the server's lifetime
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group: stop_server ends its children too
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(f"{' '.join(cmd)} exited ({proc.returncode}):\n{log.read()[-3000:]}")
        try:
            with urllib.request.urlopen(health_url, timeout=2):
                return proc
        except OSError:
            time.sleep(1)
    stop_server(proc)
    raise AssertionError(f"{' '.join(cmd)}: {health_url} did not answer within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen, grace: float = 30) -> None:
    """Stop a server from `start_server` and everything it started (MLflow's uvicorn workers): SIGTERM,
    then SIGKILL after `grace` seconds."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


SMOKE_PROFILE = "conf/profiles/smoke.yaml"
TRAIN = [sys.executable, "-m", "pipelines.train", "gru_bahdanau"]  # the train stage, by hand


def set_rnn_training(repo: Path, **train) -> None:
    """The smoke profile's RNN experiments train with `train` (new inputs: a new Ray run)."""
    import yaml

    profile = yaml.safe_load((repo / SMOKE_PROFILE).read_text())
    profile["families"]["rnn"]["train"].update(train)
    (repo / SMOKE_PROFILE).write_text(yaml.safe_dump(profile))


def epochs_printed(output: str) -> list[int]:
    """The epoch numbers of gru_bahdanau's epoch lines in a train stage's output."""
    import re

    return [int(e) for e in re.findall(r"gru_bahdanau epoch (\d+) \|", output)]


def train_run(repo: Path) -> str:
    """The MLflow run of gru_bahdanau's exported model."""
    import json

    return json.loads((repo / "models" / "gru_bahdanau" / "model.json").read_text())["run_id"]


OUTAGE_S, OUTAGE_EPOCHS = 20, 12  # the tracking server's outage (at least) during `trained_on_server`'s training


@dataclass(frozen=True)
class Outage:
    before: list[int]  # epochs printed when the server was stopped
    during: list[int]  # ... and when it was started again
    output: str  # the train stage's output


@pytest.fixture(scope="session")
def trained_on_server(smoke_repo, tracking_server, tmp_path_factory) -> tuple[Path, dict, Outage]:
    """A copy of the smoke repo without its local store whose gru_bahdanau stages ran through the session's
    tracking server: `train` (OUTAGE_EPOCHS epochs, a metric every 5 updates) with the server stopped once
    the first epoch is in, for OUTAGE_S seconds and at least two more epochs (however fast the machine),
    then `evaluate` and `register` (DVC) and `promote` (@champion). The training the tracking-server
    tests browse is the one that went through an outage."""
    smoke, smoke_env = smoke_repo
    repo = copy_repo(smoke, tmp_path_factory.mktemp("on-server") / "seqforge", "mlflow.db", "mlartifacts", "runs")
    env = {**smoke_env, "MLFLOW_TRACKING_URI": tracking_server.url}
    set_rnn_training(repo, max_epochs=OUTAGE_EPOCHS, early_stopping_patience=50, log_every_n_steps=5,
                     max_time="00:00:10:00")
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


def metric_history(repo: Path, env: dict, run_id: str, *metrics: str) -> dict:
    """{metric: [(step, value), ...], "status": ...} of one run, read from the store `env` points at."""
    import json

    code = ("import json, sys, mlflow; from seqforge.tracking.client import tracking_uri; "
            "c = mlflow.MlflowClient(tracking_uri()); r = sys.argv[1]; print(json.dumps({"
            "'status': c.get_run(r).info.status, **{m: [(h.step, h.value) for h in c.get_metric_history(r, m)]"
            " for m in sys.argv[2:]}}))")
    return json.loads(run([sys.executable, "-c", code, run_id, *metrics], repo, env).stdout)
