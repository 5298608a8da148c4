"""Servers the benches start and stop: a process in its own group (so stopping it ends its children), ready once
a URL answers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on now, on loopback."""
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """`n` different TCP ports nobody listens on now, on loopback (all held until each is chosen)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def start(cmd: list[str], ready_url: str, log: Path | None = None, timeout: float = 180, **popen) -> subprocess.Popen:
    """Run `cmd` in its own process group, its output appended to `log` (else discarded), and return once
    `ready_url` answers; exit with one line when it does not within `timeout` seconds or the process ends."""
    out = log.open("a") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **popen)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"`{' '.join(cmd)}` exited with {proc.returncode}" + (f" (its output: {log})" if log else ""))
        try:
            with urllib.request.urlopen(ready_url, timeout=2):
                return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    stop(proc)
    sys.exit(f"`{' '.join(cmd)}`: {ready_url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen, grace: float = 150) -> None:
    """SIGTERM to the server's process group, SIGKILL after `grace` seconds (`seqforge serve --engine ray` waits up
    to 120 s for Serve to go down on the cluster)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class TrackingServer:
    """`mlflow server` on loopback with its SQLite store and artifacts in `repo`, which a fault may stop for a while
    and start again on the same port."""

    def __init__(self, repo: Path, env: dict) -> None:
        self.repo, self.env, self.url = repo, env, f"http://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.repo / 'server.db'}"]
        cmd += ["--artifacts-destination", str(self.repo / "mlartifacts"), "--host", "127.0.0.1"]
        cmd += ["--port", self.url.rsplit(":", 1)[1]]
        self.proc = start(cmd, f"{self.url}/health", self.repo / "server.log", cwd=self.repo, env=self.env)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def outage(self, at: float, seconds: float, ended: threading.Event) -> bool:
        """Down from `at` s to `at + seconds` s from now, unless `ended` (the stage's end) is set by `at`; whether
        it went down."""
        if ended.wait(at):
            return False
        self.stop()
        time.sleep(seconds)
        self.start()
        return True
