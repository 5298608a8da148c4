"""Shared fixtures: the repository root, the corpus mirror, a copy of the repo with the smoke pipeline run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("SEQFORGE_DATA_MIRROR", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture
def mirror() -> Path:
    if not (MIRROR / "multi30k").is_dir():
        pytest.skip(f"no corpus mirror at {MIRROR} (set SEQFORGE_DATA_MIRROR)")
    return MIRROR


@pytest.fixture
def conf_copy(tmp_path: Path) -> Path:
    """A writable copy of conf/ on the default profile (whatever the checkout's is) to edit in a test."""
    from seqforge.config import set_profile

    dest = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", dest)
    set_profile("default", dest)
    return dest


def pairs_of(corpus, root: Path, task, tmp_path: Path):
    """(DatasetDict, stats) that the prepare stage builds for `task` from `corpus` files in `root`."""
    from seqforge.data.readers import read_corpus
    from seqforge.tasks import task_kind

    return task_kind(task.kind).pairs(read_corpus(corpus, root, tmp_path / "cache"), task, corpus, tmp_path / "cache")


def run(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command to completion; unless `check=False`, a failure shows its output's tail."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory) -> tuple[Path, dict]:
    """A clone-like copy of the working tree (tracked + untracked, not ignored) with the smoke run done."""
    if not (MIRROR / "multi30k").is_dir():
        pytest.skip(f"no corpus mirror at {MIRROR}")
    repo = copy_worktree(tmp_path_factory.mktemp("clone") / "seqforge")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    env.update(SEQFORGE_DATA_MIRROR=str(MIRROR), MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
               PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot"]):
        run(cmd, repo, env)
    for cmd in (["seqforge", "profile", "smoke"], ["seqforge", "fetch"], ["dvc", "repro"]):
        run(cmd, repo, env)
    return repo, env


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
    """A copy of `repo` at `dest` (links kept), without its top-level entries `leave_out`."""
    shutil.copytree(repo, dest, symlinks=True, ignore=lambda d, names: [n for n in names if Path(d) == repo
                                                                        and n in leave_out])
    return dest


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


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a server from `start_server` and everything it started (MLflow's uvicorn workers)."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
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


def metric_history(repo: Path, env: dict, run_id: str, *metrics: str) -> dict:
    """{metric: [(step, value), ...], "status": ...} of one run, read from the store `env` points at."""
    import json

    code = ("import json, sys, mlflow; from seqforge.tracking import tracking_uri; "
            "c = mlflow.MlflowClient(tracking_uri()); r = sys.argv[1]; print(json.dumps({"
            "'status': c.get_run(r).info.status, **{m: [(h.step, h.value) for h in c.get_metric_history(r, m)]"
            " for m in sys.argv[2:]}}))")
    return json.loads(run([sys.executable, "-c", code, run_id, *metrics], repo, env).stdout)
