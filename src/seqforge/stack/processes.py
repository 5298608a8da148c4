"""The team stack's processes: the binaries they run, starting one with its log and pid file, waiting until it
answers, and stopping it (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from glob import glob
from pathlib import Path

from seqforge.stack.config import StackCfg

START_MARK = "--- seqforge started"  # the line `spawn` writes to a part's log before each start
FATAL = re.compile(r"^F\d{4} |\bFATAL\b|^[\w.]*(Error|Exception): |^panic: |^fatal error: ")


class StackError(RuntimeError):
    """A part of the stack could not start or stop; the message names it and its log file."""


def postgres_bin(tool: str) -> str:
    """A PostgreSQL server program: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(tool) or next(iter(sorted(glob(f"/usr/lib/postgresql/*/bin/{tool}"), reverse=True)), None)
    if found is None:
        raise StackError(f"PostgreSQL's {tool} not found: install Debian's postgresql (apt-get install postgresql)")
    return found


def as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def run(cmd: list[str], what: str, log: Path, **kw) -> None:
    with log.open("a") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, **kw)
    if done.returncode:
        raise StackError(f"{what} failed (exit {done.returncode}); see {log}")


def wait_until(ready: Callable[[], bool], what: str, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    raise StackError(f"{what} did not come up within {timeout:.0f} s; see {log}")


def port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def spawn(cfg: StackCfg, name: str, cmd: list[str], extra_env: dict[str, str]) -> subprocess.Popen:
    """Start a long-running part in its own session (it outlives `make`), its pid in `<dir>/<name>.pid`."""
    log = cfg.dir / "logs" / f"{name}.log"
    with log.open("a") as out:
        out.write(f"{START_MARK} {time.strftime('%Y-%m-%d %H:%M:%S')}: {Path(cmd[0]).name}\n")  # no arguments: secrets
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ | extra_env,
            start_new_session=True,
        )
    (cfg.dir / f"{name}.pid").write_text(str(proc.pid))
    return proc


def failure(log: Path) -> str:
    """The first line of `log` since the part's last start that reports a fatal error (SeaweedFS's `F1208 ...`,
    PostgreSQL's `FATAL:`, a Python `...Error:`), or "" when none does."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    since_start = text.rpartition(START_MARK)[2].partition("\n")[2].splitlines()
    return next((line.strip()[:300] for line in since_start if FATAL.search(line)), "")


def exited(proc: subprocess.Popen | None, what: str, log: Path) -> None:
    """Fail at once when a part just started has exited (no point waiting for it), naming why."""
    if proc is not None and proc.poll() is not None:
        why = failure(log)
        raise StackError(f"{what} exited with status {proc.returncode}{': ' + why if why else ''}; see {log}")


def alive(cfg: StackCfg, name: str) -> bool:
    """The part's process still runs (an exited one nobody has reaped yet, a zombie, does not: in a
    container whose first process reaps no orphans, it would stay one)."""
    pid_file = cfg.dir / f"{name}.pid"
    if not pid_file.is_file():
        return False
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError):
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (not Linux): the signal answered
        return True


def stop(cfg: StackCfg, name: str, timeout: float = 30.0) -> None:
    """SIGTERM the part's process group, then SIGKILL after `timeout`."""
    pid_file = cfg.dir / f"{name}.pid"
    if not alive(cfg, name):
        pid_file.unlink(missing_ok=True)
        return
    pid = int(pid_file.read_text())
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(cfg, name):
        time.sleep(0.2)
    if alive(cfg, name):
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
