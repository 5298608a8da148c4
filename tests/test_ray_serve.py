"""`seqforge serve --engine ray`: a registered version on the session's Ray cluster as Ray Serve replicas, with
MLflow's scoring contract, the requests that arrive together decoded as one batch, a moved alias rolled out
under load, a replica killed under load and replaced, and a second replica added under load within the autoscaling
bounds."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from helpers import free_port, invocation, run, start_server, stop_server

pytestmark = pytest.mark.slow

MODEL = "translation-en-de@challenger"
SENTENCES = [f"A man number {i} is riding a bike." if i % 2 else f"{i} dogs play in the snow." for i in range(40)]
BAD = {  # what MLflow's server answers 400, and ours must in the same words
    "too many characters": [{"source": "x" * 1001}],
    "too many rows": [{"source": "A dog."}] * 65,
    "not a string": [{"source": "A dog."}, {"source": 42}],
    "no source column": [{"text": "A dog."}],
    "too many tokens": [{"source": "A dog."}, {"source": "가나다라 " * 100}],
}


SHUTDOWN_S = 150  # `serve --engine ray` exits once Serve is down on the cluster (it waits up to 120 s for that)
LIVE_REPLICAS = (  # actor, process and node of each live replica of the application, from the cluster's state API
    "from ray.util.state import list_actors; [print(a.actor_id, a.pid, a.node_id) for a in list_actors(filters=["
    "('class_name', '=', 'ServeReplica:seqforge:ScoringReplica'), ('state', '=', 'ALIVE')])]"
)


def replicas(repo, env) -> list[tuple[str, int, str]]:
    """(actor id, pid, node id) of each live replica on the session's cluster."""
    lines = run([sys.executable, "-c", LIVE_REPLICAS], repo, env).stdout.splitlines()
    return [(actor, int(pid), node) for actor, pid, node in (line.split() for line in lines if line.count(" ") == 2)]


def serve_log(lines: int = 40) -> str:
    """The tail of the newest Serve controller log on this machine (what Serve did about a replica)."""
    logs = sorted(Path("/tmp/ray").glob("session_*/logs/serve/controller_*.log"), key=lambda p: p.stat().st_mtime)
    return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:]) if logs else "no Serve controller log"


def registry(repo, env, statement: str) -> str:
    """What `statement` prints, run against the repo's store as `c` (an `MlflowClient`)."""
    client = "import mlflow; from seqforge.tracking.client import tracking_uri; c = mlflow.MlflowClient(tracking_uri())"
    code = f"{client}; {statement}"
    return run([sys.executable, "-c", code], repo, env).stdout.strip()


def challenger(repo, env) -> str:
    """The version `translation-en-de@challenger` is in the repo's store."""
    return registry(repo, env, "print(c.get_model_version_by_alias('translation-en-de', 'challenger').version)")


def configure(repo, **serve) -> None:
    """`serve.*` in the repo's conf/config.yaml."""
    conf = yaml.safe_load((repo / "conf" / "config.yaml").read_text())
    conf["serve"].update(serve)
    (repo / "conf" / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))


def serving(repo, env, engine: str, port: int, *flags: str, log=None):
    return start_server(
        ["seqforge", "serve", "-m", MODEL, "--engine", engine, "--port", str(port), "--workers", "1", *flags],
        repo,
        env,
        f"http://127.0.0.1:{port}/ping",
        timeout=240,
        log_path=log,
    )


@contextlib.contextmanager
def under_load(clients: int, request: Callable[[int], None]) -> Iterator[None]:
    """`clients` threads, each calling `request(n)` without pause for n = its index, index + 1, ..., until the block
    ends, whatever happens in it; a client's error is raised after it."""
    stop = threading.Event()

    def client(first: int) -> None:
        for n in itertools.count(first):
            if stop.is_set():
                return
            request(n)

    with ThreadPoolExecutor(clients) as pool:
        running = [pool.submit(client, i) for i in range(clients)]
        try:
            yield
        finally:
            stop.set()
        for done in running:
            done.result()


def test_ray_serve_answers_as_mlflow_does_and_batches_concurrent_requests(smoke_copy) -> None:
    """Two replicas, one on each node of the cluster: the same answers and 400 messages as `--engine mlflow` for the
    same requests; then 40 requests at once, every fifth with a bad row: each bad one is its own 400, each good one
    gets exactly the translation it gets alone, and the answers say which version gave them."""
    repo, env = smoke_copy
    configure(repo, replicas=2, max_batch_size=16, batch_wait_ms=20)
    requests = [{"dataframe_records": [{"source": s} for s in SENTENCES[:3]]}] + [
        {"dataframe_records": rows} for rows in BAD.values()
    ]

    port = free_port()
    proc = serving(repo, env, "mlflow", port)
    try:
        expected = [invocation(port, r)[:2] for r in requests]
    finally:
        stop_server(proc, grace=SHUTDOWN_S)
    assert [status for status, _ in expected] == [200] + [400] * len(BAD)

    port = free_port()
    proc = serving(repo, env, "ray", port)
    try:
        answered = [invocation(port, r) for r in requests]
        assert [(status, body) for status, body, _ in answered] == expected  # MLflow's contract, word for word
        assert {h["x-model-version"] for *_, h in answered} == {f"translation-en-de/{challenger(repo, env)}"}
        assert len({node for *_, node in replicas(repo, env)}) == 2  # one replica on each node

        alone = {i: invocation(port, {"dataframe_records": [{"source": SENTENCES[i]}]})[1] for i in range(0, 40, 3)}

        def one(i: int) -> tuple[int, dict, dict]:
            rows = [{"source": SENTENCES[i]}] + ([{"source": 42}] if i % 5 == 0 else [])
            return invocation(port, {"dataframe_records": rows})

        with ThreadPoolExecutor(40) as pool:
            together = list(pool.map(one, range(40)))
        assert [status for status, *_ in together] == [400 if i % 5 == 0 else 200 for i in range(40)]
        assert all("expected a string, got int 42" in body["message"] for status, body, _ in together if status == 400)
        assert {i: together[i][1] for i in alone if i % 5} == {i: body for i, body in alone.items() if i % 5}
    finally:
        stop_server(proc, grace=SHUTDOWN_S)


def test_a_moved_alias_rolls_out_under_load_and_no_request_fails(smoke_copy, tmp_path) -> None:
    """`--follow-alias`, two replicas, four clients posting without pause while `challenger` moves to another
    version: every request is answered 200 by one version or the other, and every request sent after the
    server says the new version serves on every replica is answered by it."""
    repo, env = smoke_copy
    configure(repo, replicas=2, follow_every_s=1)
    before = challenger(repo, env)
    after = registry(
        repo, env, "print(max(int(v.version) for v in c.search_model_versions(\"name='translation-en-de'\")))"
    )
    after = after if after != before else str(int(after) - 1)
    log = tmp_path / "serve.log"
    port = free_port()
    proc = serving(repo, env, "ray", port, "--follow-alias", log=log)
    answers: list[tuple[float, int, str | None]] = []  # (sent at, status, version that answered)

    def request(n: int) -> None:
        sent = time.monotonic()
        status, _, headers = invocation(port, {"dataframe_records": [{"source": "Two dogs play in the snow."}]})
        answers.append((sent, status, headers.get("x-model-version")))

    try:
        with under_load(4, request):
            time.sleep(3)
            registry(repo, env, f"c.set_registered_model_alias('translation-en-de', 'challenger', '{after}')")
            deadline = time.monotonic() + 240
            while "serves on every replica" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.5)
            rolled_out = time.monotonic()
            time.sleep(3)
    finally:
        stop_server(proc, grace=SHUTDOWN_S)
    assert f"moved to version {after}" in log.read_text(), log.read_text()[-2000:]
    assert {status for _, status, _ in answers} == {200}
    assert {v for _, _, v in answers} == {f"translation-en-de/{before}", f"translation-en-de/{after}"}
    assert {v for sent, _, v in answers if sent > rolled_out} == {f"translation-en-de/{after}"}


def test_a_replica_killed_under_load_is_replaced_and_no_request_is_answered_wrongly(smoke_copy) -> None:
    """Two replicas, six clients posting without pause, and one replica's process killed (SIGKILL): Serve starts
    another in its place; the requests in flight on the dead one are answered 500 by Serve's proxy and sent again by
    their client (a translation is safe to repeat), and every request ends answered 200 with exactly the
    translation its sentence gets alone, before, during and after the kill."""
    repo, env = smoke_copy
    configure(repo, replicas=2)
    assert replicas(repo, env) == [], "an earlier server's replicas are still alive on the cluster"
    port = free_port()
    proc = serving(repo, env, "ray", port)
    answers: list[tuple[float, str, int, int, dict]] = []  # (sent at, sentence, tries, final status, final body)

    def ask(sentence: str) -> tuple[int, dict]:
        """Status and body; 0 for a connection the server dropped (a retry's case too)."""
        try:
            return invocation(port, {"dataframe_records": [{"source": sentence}]})[:2]
        except OSError:
            return 0, {}

    def request(n: int) -> None:
        sentence, sent, tries = SENTENCES[n % 8], time.monotonic(), 1
        status, body = ask(sentence)
        while status in (0, 500, 503) and tries < 5:  # a request lost with its replica
            tries += 1
            status, body = ask(sentence)
        answers.append((sent, sentence, tries, status, body))

    try:
        alone = {s: invocation(port, {"dataframe_records": [{"source": s}]})[1] for s in SENTENCES[:8]}
        with under_load(6, request):
            time.sleep(3)
            victim, pid, _ = replicas(repo, env)[0]
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            while time.monotonic() < killed + 180:
                live = replicas(repo, env)
                if len(live) == 2 and victim not in {actor for actor, *_ in live}:
                    break
                time.sleep(0.5)
            replaced = time.monotonic()
            time.sleep(3)
    finally:
        stop_server(proc, grace=SHUTDOWN_S)
    assert replaced - killed < 180, f"no replica in place of {victim} within 3 minutes; live: {live}; {serve_log()}"
    assert {status for *_, status, _ in answers} == {200}, [a for a in answers if a[3] != 200][:3]
    assert [a for a in answers if a[4] != alone[a[1]]] == []  # nobody got another sentence's translation
    assert any(sent > replaced for sent, *_ in answers) and any(sent < killed for sent, *_ in answers)
    retried = sum(tries > 1 for _, _, tries, *_ in answers)
    print(f"replica replaced in {replaced - killed:.1f} s; {len(answers)} requests, {retried} retried, all 200")


def test_load_beyond_a_batch_per_replica_adds_a_replica_up_to_the_bound(smoke_copy) -> None:
    """Autoscaling between one replica and two (`serve.max_replicas`): twelve clients posting without pause keep
    more than a batch (four requests) ongoing on the one replica; Serve adds the second within 150 s and no third,
    and every request is answered 200 meanwhile."""
    repo, env = smoke_copy
    configure(repo, replicas=1, max_replicas=2, max_batch_size=4)
    assert replicas(repo, env) == [], "an earlier server's replicas are still alive on the cluster"
    port = free_port()
    proc = serving(repo, env, "ray", port)
    statuses: list[int] = []

    def request(n: int) -> None:
        try:
            statuses.append(invocation(port, {"dataframe_records": [{"source": SENTENCES[n % 8]}]})[0])
        except OSError:
            statuses.append(0)

    try:
        before = len(replicas(repo, env))
        with under_load(12, request):
            loaded = time.monotonic()
            while (now := len(replicas(repo, env))) < 2 and time.monotonic() < loaded + 150:
                time.sleep(1)
            scaled = time.monotonic() - loaded
            time.sleep(10)
            after = len(replicas(repo, env))
    finally:
        stop_server(proc, grace=SHUTDOWN_S)
    assert (before, now, after) == (1, 2, 2), ((before, now, after), serve_log())
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    print(f"second replica {scaled:.1f} s into the load; {len(statuses)} requests, all 200")
