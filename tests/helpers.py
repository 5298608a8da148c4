"""What tests share besides fixtures (`conftest.py` holds those): the repository and corpus mirror, running
commands and servers, copies of a repository and its MLflow store, and the training-run helpers of the fault
tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


MIRROR = Path(os.environ.get("SEQFORGE_DATA_MIRROR", ROOT.parent / "shared" / "data")).resolve()


def pairs_of(corpus, root: Path, task, tmp_path: Path):
    """(DatasetDict, stats) that the prepare stage builds for `task` from `corpus` files in `root`."""
    from seqforge.data.rows import read_corpus
    from seqforge.tasks.registry import task_kind

    return task_kind(task.kind).pairs(read_corpus(corpus, root, tmp_path / "cache"), task, corpus, tmp_path / "cache")


def run(
    cmd: list[str], cwd: Path, env: dict, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess:
    """Run a command to completion, feeding it `input`; unless `check=False`, a failure shows its output's tail."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, input=input, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def clean_env() -> dict:
    """This process's environment without the settings that would send a test's stages elsewhere (an
    MLflow store, a Ray cluster, an object store), with the venv's commands first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "RAY_ADDRESS", "AWS_", "SEQFORGE_RAY", "SEQFORGE_KILL"))
    }
    env.update(
        SEQFORGE_DATA_MIRROR=str(MIRROR),
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        RAY_AUTH_MODE="disabled",  # loopback only; a real cluster shares a token
        RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="0.5",  # a reported checkpoint is registered sooner (default 2 s)
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )
    return env


@dataclass(frozen=True)
class RayCluster:
    address: str
    env: dict  # a driver's environment on this cluster (`RAY_ADDRESS` set)


def sweep_repo_path(tmp_path_factory) -> Path:
    """Where the sweep tests' copy of the smoke repo goes (the worker node hides its `artifacts/`)."""
    return tmp_path_factory.getbasetemp() / "sweep" / "seqforge"


def fingerprint(repo: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file of `repo` but git's, DVC's, Ray's and the plans' scratch, bytecode, and
    the `registered_model_meta` files MLflow writes into a local store whenever a registered model loads."""
    skip = (repo / ".git", repo / ".dvc" / "tmp", repo / "runs", repo / ".seqforge")
    return {
        str(p.relative_to(repo)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in repo.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and "__pycache__" not in p.parts
        and p.name != "registered_model_meta"
        and not any(p.is_relative_to(s) for s in skip)
    }


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
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.base / 'server.db'}",
                "--artifacts-destination",
                str(self.artifacts),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            self.base,
            self.env,
            f"{self.url}/health",
            log_path=self.base / "server.log",
        )

    def stop(self) -> None:
        stop_server(self.proc)

    def log(self) -> str:
        return (self.base / "server.log").read_text()


def copy_worktree(repo: Path) -> Path:
    """What a clone of the working tree holds (tracked and untracked files, not ignored ones), at `repo`."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    return repo


def copy_repo(repo: Path, dest: Path, *leave_out: str) -> Path:
    """A copy of `repo` at `dest` (links kept; `dest` may exist, empty), without its top-level entries `leave_out`.
    Its MLflow store, if copied, is its own: runs and models point at the copy's `mlartifacts/`."""
    shutil.copytree(
        repo,
        dest,
        symlinks=True,
        dirs_exist_ok=True,
        ignore=lambda d, names: [n for n in names if Path(d) == repo and n in leave_out],
    )
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
                    con.execute(
                        f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE "{column}" LIKE ?',
                        (str(old), str(new), f"%{old}%"),
                    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    cmd: list[str], cwd: Path, env: dict, health_url: str, timeout: float = 120, log_path: Path | None = None
) -> subprocess.Popen:
    """Start a server process and wait until `health_url` answers; the caller terminates it. Its
    output goes to `log_path` (appended), else to a temporary file."""
    import tempfile
    import urllib.request

    # not a pipe: a chatty server must never block on it; the file stays open as long as the server runs
    log = open(log_path, "a+") if log_path else tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )  # its own process group: stop_server ends its children too
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


def metric_history(repo: Path, env: dict, run_id: str, *metrics: str) -> dict:
    """{metric: [(step, value), ...], "status": ...} of one run, read from the store `env` points at."""
    import json

    code = (
        "import json, sys, mlflow; from seqforge.tracking.client import tracking_uri; "
        "c = mlflow.MlflowClient(tracking_uri()); r = sys.argv[1]; print(json.dumps({"
        "'status': c.get_run(r).info.status, **{m: [(h.step, h.value) for h in c.get_metric_history(r, m)]"
        " for m in sys.argv[2:]}}))"
    )
    return json.loads(run([sys.executable, "-c", code, run_id, *metrics], repo, env).stdout)


def invocation(port: int, payload: object, timeout: float = 120) -> tuple[int, dict, dict]:
    """Status, body and headers of one /invocations request to a server on loopback `port`: the body as JSON,
    or `{"text": ...}` where it is not (Ray Serve's proxy answers a request lost with its replica in plain text)."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, body, headers = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        status, body, headers = err.code, err.read() or b"{}", dict(err.headers)
    try:
        return status, json.loads(body), headers
    except json.JSONDecodeError:
        return status, {"text": body.decode(errors="replace")}, headers
