"""Loopback load test of `seqforge serve` (a translation model): concurrent clients, valid and invalid requests mixed.

    python -m bench.serve_load [--model translation-en-de@challenger] [--engine ray|mlflow] [--clients 8] [--seconds 60]

Starts `seqforge serve --engine` on a free port (or loads `--url`), then `--clients` threads post requests
for `--seconds`: valid ones (1 to 8 sentences of test_2016_flickr, or the built-in examples) and,
with probability `--invalid`, one of the bad requests below, each of which must get HTTP 400.
Prints requests/s, p50/p99 latency of valid and invalid requests, unexpected outcomes (any
status other than 200 for a valid request or 400 for an invalid one, a connection error, a
timeout) and the server's RSS (its process tree, and Ray Serve's replicas) at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

SENTENCES = [
    "A man is riding a bike.",
    "Two dogs play in the snow.",
    "A girl reads a book in the park.",
    "People are walking down a busy street at night.",
    "A child in a red coat jumps into a puddle.",
]
INVALID = {  # name -> rows (each a dataframe record) the model must refuse with HTTP 400
    "too many characters": [{"source": "x" * 1001}],
    "too many rows": [{"source": "A dog."}] * 65,
    "not a string": [{"source": 42}],
    "no source column": [{"text": "A dog."}],
    "too many tokens": [{"source": "A dog."}, {"source": "가나다라 " * 100}],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, records: list[dict], timeout: float) -> int:
    """HTTP status of one /invocations request (0: no answer)."""
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps({"dataframe_records": records}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as err:
        err.read()
        return err.code
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return 0


def server_rss(pid: int) -> float:
    """Resident memory (MiB) of a server: its process and children (MLflow's uvicorn workers), and the Ray Serve
    replicas of `seqforge serve --engine ray`, which are Ray's processes, not its children."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]  # a local Ray instance: all of it
    procs += [p for p in psutil.process_iter(["cmdline"]) if "ScoringReplica" in " ".join(p.info["cmdline"] or ())]
    total = 0
    for proc in {p.pid: p for p in procs}.values():  # each process once
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def start(model: str, port: int, engine: str, workers: int) -> subprocess.Popen:
    """`seqforge serve` in its own process group, once it answers /ping."""
    cmd = [sys.executable, "-m", "seqforge.cli", "serve", "-m", model, "--port", str(port), "--engine", engine]
    cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"serve_load: `{' '.join(cmd)}` exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    proc.kill()
    sys.exit("serve_load: the server did not answer /ping within 180 s")


def load(url: str, clients: int, seconds: float, invalid: float, sentences: list[str], seed: int) -> dict:
    """Run the clients; latencies (s) per request class and a count of every outcome."""
    latencies: dict[str, list[float]] = defaultdict(list)
    outcomes: Counter = Counter()
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client(i: int) -> None:
        rng = random.Random(seed + i)
        while time.monotonic() < end:
            if rng.random() < invalid:
                name = rng.choice(sorted(INVALID))
                records, expected, kind = INVALID[name], 400, "invalid"
            else:
                records = [{"source": rng.choice(sentences)} for _ in range(rng.randint(1, 8))]
                name, expected, kind = "valid", 200, "valid"
            t0 = time.perf_counter()
            status = post(url, records, timeout=120)
            with lock:
                latencies[kind].append(time.perf_counter() - t0)
                outcomes[(name, status == expected)] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "outcomes": outcomes, "elapsed": time.monotonic() - t0}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="translation-en-de@challenger")
    parser.add_argument("--url", help="an already running server (default: start `seqforge serve`)")
    parser.add_argument("--engine", choices=("ray", "mlflow"), default="ray", help="`seqforge serve --engine`")
    parser.add_argument("--workers", type=int, default=2, help="--engine mlflow: server processes")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--invalid", type=float, default=0.25, help="share of invalid requests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    test = Path("data/multi30k/test_2016_flickr.en.gz")
    sentences = SENTENCES
    if test.is_file():
        import gzip

        with gzip.open(test, "rt", encoding="utf-8") as lines:
            sentences = [s.strip() for s in lines if s.strip()]
    server = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        port = free_port()
        server, url = start(args.model, port, args.engine, args.workers), f"http://127.0.0.1:{port}"
    try:
        load(url, args.clients, 10, 0.0, sentences, args.seed + 1000)  # warm-up: every server process decodes
        rss_start = server_rss(server.pid) if server else float("nan")
        result = load(url, args.clients, args.seconds, args.invalid, sentences, args.seed)
        rss_end = server_rss(server.pid) if server else float("nan")
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    outcomes, lat = result["outcomes"], result["latencies"]
    total = sum(outcomes.values())
    unexpected = sum(n for (_, ok), n in outcomes.items() if not ok)
    figures = {
        "requests": total,
        "requests_per_s": round(total / result["elapsed"], 2),
        "valid": len(lat["valid"]),
        "invalid": len(lat["invalid"]),
        "invalid_answered_400": sum(n for (name, ok), n in outcomes.items() if name != "valid" and ok),
        "unexpected": unexpected,
        "p50_valid_ms": round(1000 * quantile(lat["valid"], 0.5), 1),
        "p99_valid_ms": round(1000 * quantile(lat["valid"], 0.99), 1),
        "p50_invalid_ms": round(1000 * quantile(lat["invalid"], 0.5), 1),
        "p99_invalid_ms": round(1000 * quantile(lat["invalid"], 0.99), 1),
        "rss_start_mib": round(rss_start, 1),
        "rss_end_mib": round(rss_end, 1),
        "rss_growth_pct": round(100 * (rss_end / rss_start - 1), 1) if server else None,
        "unexpected_by_request": {name: n for (name, ok), n in outcomes.items() if not ok},
    }
    table = Table(
        title=f"{args.model}: {args.clients} clients x {args.seconds:.0f} s, "
        f"{args.invalid:.0%} invalid, "
        + (f"{args.workers} MLflow server workers" if args.engine == "mlflow" else "Ray Serve (serve.* in conf/)")
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "requests",
        "requests_per_s",
        "valid",
        "invalid",
        "invalid_answered_400",
        "unexpected",
        "p50_valid_ms",
        "p99_valid_ms",
        "p50_invalid_ms",
        "p99_invalid_ms",
        "rss_start_mib",
        "rss_end_mib",
        "rss_growth_pct",
    ):
        table.add_row(key, str(figures[key]))
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if unexpected:
        sys.exit(f"serve_load: {unexpected} unexpected outcomes: {figures['unexpected_by_request']}")


if __name__ == "__main__":
    main()
