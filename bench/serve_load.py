"""Loopback load test of `seqforge serve`, both engines side by side on the same model and requests.

    python -m bench.serve_load --model translation-en-de@challenger       # both engines at 1, 8 and 32 clients
    python -m bench.serve_load --model translation-en-de@challenger --engines ray --clients 32 --seconds 300
    python -m bench.serve_load --model translation-en-de@challenger --engines ray --soak   # 10 minutes, 8 clients

For each engine (`--engines`, default `ray,mlflow`) it starts `seqforge serve --engine` on a free port (or
loads `--url`) and, for each client count (`--clients`, default `1,8,32`), lets that many threads post
requests for `--seconds` after a warm-up: valid ones (1 to `--rows` sentences of test_2016_flickr, or the
built-in examples) and, with probability `--invalid`, one of the bad requests below (bad rows, malformed JSON,
a wrong schema, an empty body, a 1.2 MB line), each of which must get HTTP 400. The server's RSS is sampled
every `--rss-every` seconds while the clients run.
Prints one row per engine and client count (requests/s, p50/p99 latency of valid and invalid requests,
unexpected outcomes: any status other than 200 for a valid request or 400 for an invalid one, a connection
error, a timeout; the server's RSS: its process tree and Ray Serve's replicas) and, as its last line,
`ray/mlflow req/s ratio at N clients R` for the most clients. The figures go to
reports/serving/<model>.json (`--json` to choose).

`--soak` is the long run of one client count (default 8 clients for 600 s after a 30 s warm-up, half the
requests invalid): one row per request kind, then as its last line `soak on ENGINE: N requests in S s, unexpected U,
invalid answered 400 I of J, RSS growth G %`; it exits non-zero on an unexpected outcome or RSS growth of
10 % or more. Its figures go to reports/soak/<model>.json.
"""

from __future__ import annotations

import argparse
import json
import random
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

from bench.servers import free_port, start, stop
from seqforge.config.shared import load_config

SENTENCES = [
    "A man is riding a bike.",
    "Two dogs play in the snow.",
    "A girl reads a book in the park.",
    "People are walking down a busy street at night.",
    "A child in a red coat jumps into a puddle.",
]
GROWTH_LIMIT = 0.10  # a soak fails when the server's RSS grows by this share or more


def records(rows: list[dict]) -> bytes:
    """An /invocations body in MLflow's `dataframe_records` shape."""
    return json.dumps({"dataframe_records": rows}).encode()


INVALID = {  # name -> a request body the server must refuse with HTTP 400
    "too many characters": records([{"source": "x" * 1001}]),
    "too many rows": records([{"source": "A dog."}] * 65),
    "not a string": records([{"source": 42}]),
    "no source column": records([{"text": "A dog."}]),
    "too many tokens": records([{"source": "A dog."}, {"source": "가나다라 " * 100}]),
    "malformed JSON": b'{"dataframe_records": [{"source": "A dog."}',
    "wrong schema": b'{"records": [{"source": "A dog."}]}',
    "empty body": b"",
    "very long line": records([{"source": "a dog runs " * 110_000}]),  # 1.2 MB, no newline
}


def post(url: str, body: bytes, timeout: float) -> int:
    """HTTP status of one /invocations request (0: no answer)."""
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
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


def watch_rss(pid: int, every: float, done: threading.Event, samples: list[float]) -> None:
    """Append the server's RSS (MiB) to `samples` now, every `every` seconds, and once more when `done` is set."""
    samples.append(server_rss(pid))
    while not done.wait(every):
        samples.append(server_rss(pid))
    samples.append(server_rss(pid))


def start_serving(model: str, port: int, engine: str, workers: int) -> subprocess.Popen:
    """`seqforge serve` in its own process group, once it answers /ping."""
    cmd = [sys.executable, "-m", "seqforge.cli", "serve", "-m", model, "--port", str(port), "--engine", engine]
    return start([*cmd, "--workers", str(workers)], f"http://127.0.0.1:{port}/ping")


def load(url: str, clients: int, seconds: float, invalid: float, sentences: list[str], seed: int, rows: int) -> dict:
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
                body, expected, kind = INVALID[name], 400, "invalid"
            else:
                body = records([{"source": rng.choice(sentences)} for _ in range(rng.randint(1, rows))])
                name, expected, kind = "valid", 200, "valid"
            t0 = time.perf_counter()
            status = post(url, body, timeout=120)
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


def figures(result: dict, rss: list[float]) -> dict:
    """The measures of one load run, `rss` the server's RSS (MiB) sampled while it ran."""
    outcomes, lat = result["outcomes"], result["latencies"]
    total = sum(outcomes.values())
    by_request: dict[str, dict[str, int]] = defaultdict(lambda: {"requests": 0, "as_expected": 0})
    for (name, ok), n in outcomes.items():
        by_request[name]["requests"] += n
        by_request[name]["as_expected"] += n if ok else 0
    rss = rss or [float("nan")]
    return {
        "requests": total,
        "requests_per_s": round(total / result["elapsed"], 2),
        "valid": len(lat["valid"]),
        "invalid": len(lat["invalid"]),
        "invalid_answered_400": sum(n for (name, ok), n in outcomes.items() if name != "valid" and ok),
        "unexpected": sum(n for (_, ok), n in outcomes.items() if not ok),
        "p50_valid_ms": round(1000 * quantile(lat["valid"], 0.5), 1),
        "p99_valid_ms": round(1000 * quantile(lat["valid"], 0.99), 1),
        "p50_invalid_ms": round(1000 * quantile(lat["invalid"], 0.5), 1),
        "p99_invalid_ms": round(1000 * quantile(lat["invalid"], 0.99), 1),
        "rss_start_mib": round(rss[0], 1),
        "rss_end_mib": round(rss[-1], 1),
        "rss_max_mib": round(max(rss), 1),
        "rss_growth": round(rss[-1] / rss[0] - 1, 4),
        "rss_mib": [round(m, 1) for m in rss],
        "by_request": dict(sorted(by_request.items())),
        "unexpected_by_request": {name: n for (name, ok), n in outcomes.items() if not ok},
    }


def drive(args: argparse.Namespace, engine: str, sentences: list[str]) -> list[dict]:
    """Every client count against one server of `engine` (started here unless `--url`), each after a warm-up."""
    server, url = None, (args.url or "").rstrip("/")
    if not args.url:
        port = free_port()
        server, url = start_serving(args.model, port, engine, args.workers), f"http://127.0.0.1:{port}"
    runs = []
    try:
        for clients in args.clients:
            load(url, clients, args.warmup, 0.0, sentences, args.seed + 1000, args.rows)  # every server process decodes
            rss: list[float] = []
            done = threading.Event()
            watcher = (
                threading.Thread(target=watch_rss, args=(server.pid, args.rss_every, done, rss)) if server else None
            )
            if watcher:
                watcher.start()
            result = load(url, clients, args.seconds, args.invalid, sentences, args.seed, args.rows)
            if watcher:
                done.set()
                watcher.join()
            runs.append({"engine": engine, "clients": clients, **figures(result, rss)})
    finally:
        if server is not None:
            stop(server)
    return runs


def load_table(args: argparse.Namespace, runs: list[dict]) -> Table:
    """One row per engine and client count."""
    table = Table(
        title=f"{args.model}: {args.seconds:.0f} s per row, 1-{args.rows} sentences a request, {args.invalid:.0%} "
        f"invalid; mlflow: {args.workers} server workers, ray: serve.* in conf/"
    )
    columns = ("engine", "clients", "req/s", "p50 ms", "p99 ms", "400 p50 ms", "unexpected", "RSS MiB start→end")
    for name in columns:
        table.add_column(name, justify="left" if name == "engine" else "right")
    for r in runs:
        table.add_row(
            r["engine"],
            str(r["clients"]),
            f"{r['requests_per_s']:.1f}",
            f"{r['p50_valid_ms']:.0f}",
            f"{r['p99_valid_ms']:.0f}",
            f"{r['p50_invalid_ms']:.0f}",
            str(r["unexpected"]),
            f"{r['rss_start_mib']:.0f}→{r['rss_end_mib']:.0f}",
        )
    return table


def soak_table(args: argparse.Namespace, run: dict) -> Table:
    """One row per request kind of a soak run, the RSS samples in the caption."""
    table = Table(
        title=f"soak of {args.model} on {run['engine']}: {run['clients']} clients, {args.seconds:.0f} s, "
        f"{args.invalid:.0%} invalid",
        caption=f"RSS MiB every {args.rss_every:g} s: " + " ".join(f"{m:.0f}" for m in run["rss_mib"]),
    )
    for name in ("request", "requests", "answered as expected", "expected"):
        table.add_column(name, justify="left" if name in ("request", "expected") else "right")
    for name, n in run["by_request"].items():
        table.add_row(name, str(n["requests"]), str(n["as_expected"]), "200" if name == "valid" else "400")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="translation-en-de@challenger")
    parser.add_argument("--url", help="an already running server (default: start `seqforge serve`)")
    parser.add_argument("--engines", default="ray,mlflow", help="`seqforge serve --engine`s, comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="--engine mlflow: server processes")
    parser.add_argument("--soak", action="store_true", help="the long run of one client count (see above)")
    parser.add_argument("--clients", help="concurrent clients, comma-separated (default 1,8,32; --soak 8)")
    parser.add_argument("--seconds", type=float, help="measured seconds per client count (default 20; --soak 600)")
    parser.add_argument("--warmup", type=float, help="seconds of valid requests before each (default 5; --soak 30)")
    parser.add_argument("--rows", type=int, default=8, help="a valid request has 1 to this many sentences")
    parser.add_argument("--invalid", type=float, help="share of invalid requests (default 0.25; --soak 0.5)")
    parser.add_argument("--rss-every", type=float, default=10, help="seconds between samples of the server's RSS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="where the figures go (default: reports/{serving,soak}/<model>.json)")
    args = parser.parse_args()
    defaults = {"clients": "8", "seconds": 600, "warmup": 30, "invalid": 0.5} if args.soak else {}
    defaults = {"clients": "1,8,32", "seconds": 20, "warmup": 5, "invalid": 0.25} | defaults
    for key, value in defaults.items():
        setattr(args, key, value if getattr(args, key) is None else getattr(args, key))
    args.clients = [int(n) for n in str(args.clients).split(",")]
    engines = args.engines.split(",")
    if unknown := set(engines) - {"ray", "mlflow"}:
        sys.exit(f"serve_load: --engines: unknown {', '.join(sorted(unknown))} (ray, mlflow)")
    if args.soak and len(args.clients) != 1:
        sys.exit("serve_load: --soak runs one client count: give --clients one number")
    if args.soak and args.url:
        sys.exit("serve_load: --soak measures the server's memory: it starts the server (no --url)")

    test = Path("data/multi30k/test_2016_flickr.en.gz")
    sentences = SENTENCES
    if test.is_file():
        import gzip

        with gzip.open(test, "rt", encoding="utf-8") as lines:
            sentences = [s.strip() for s in lines if s.strip()]
    runs = [run for engine in engines for run in drive(args, engine, sentences)]

    for table in [soak_table(args, run) for run in runs] if args.soak else [load_table(args, runs)]:
        Console().print(table)
    name = args.model.replace("/", "_").replace("@", "_")
    out = args.json or Path("reports/soak" if args.soak else "reports/serving") / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"model": args.model, "seconds": args.seconds, "rows": args.rows, "invalid": args.invalid}
    report |= {"rss_every": args.rss_every}
    report |= {"workers": args.workers, "serve": load_config().serve.model_dump() if "ray" in engines else None}
    out.write_text(json.dumps({**report, "runs": runs}, indent=2) + "\n")
    most = max(args.clients)
    rate = {r["engine"]: r["requests_per_s"] for r in runs if r["clients"] == most}
    if {"ray", "mlflow"} <= rate.keys() and not args.soak:
        print(f"ray/mlflow req/s ratio at {most} clients {rate['ray'] / rate['mlflow']:.2f}")
    for r in runs if args.soak else []:
        print(
            f"soak on {r['engine']}: {r['requests']} requests in {args.seconds:.0f} s, unexpected {r['unexpected']}, "
            f"invalid answered 400 {r['invalid_answered_400']} of {r['invalid']}, "
            f"RSS growth {100 * r['rss_growth']:.1f} %"
        )
    if unexpected := {f"{r['engine']} × {r['clients']}": r["unexpected_by_request"] for r in runs if r["unexpected"]}:
        sys.exit(f"serve_load: unexpected outcomes: {unexpected}")
    if args.soak and (grown := [r["engine"] for r in runs if r["rss_growth"] >= GROWTH_LIMIT]):
        sys.exit(f"serve_load: the server's RSS grew by {GROWTH_LIMIT:.0%} or more on {', '.join(grown)}")


if __name__ == "__main__":
    main()
