"""`seqforge serve --engine ray`: a registered version on the session's Ray cluster as Ray Serve replicas, with
MLflow's scoring contract and the requests that arrive together decoded as one batch."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

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


def challenger(repo, env) -> str:
    """The version `translation-en-de@challenger` is in the repo's store."""
    code = (
        "import mlflow; from seqforge.tracking.client import tracking_uri; c = mlflow.MlflowClient(tracking_uri()); "
        "print(c.get_model_version_by_alias('translation-en-de', 'challenger').version)"
    )
    return run([sys.executable, "-c", code], repo, env).stdout.strip()


def serving(repo, env, engine: str, port: int):
    return start_server(
        ["seqforge", "serve", "-m", MODEL, "--engine", engine, "--port", str(port), "--workers", "1"],
        repo,
        env,
        f"http://127.0.0.1:{port}/ping",
        timeout=240,
    )


def test_ray_serve_answers_as_mlflow_does_and_batches_concurrent_requests(smoke_copy) -> None:
    """Two replicas on the two-node cluster: the same answers and 400 messages as `--engine mlflow` for the same
    requests; then 40 requests at once, every fifth with a bad row: each bad one is its own 400, each good one
    gets exactly the translation it gets alone, and the answers say which version gave them."""
    repo, env = smoke_copy
    conf = yaml.safe_load((repo / "conf" / "config.yaml").read_text())
    conf["serve"].update(replicas=2, max_batch_size=16, batch_wait_ms=20)
    (repo / "conf" / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    requests = [{"dataframe_records": [{"source": s} for s in SENTENCES[:3]]}] + [
        {"dataframe_records": rows} for rows in BAD.values()
    ]

    port = free_port()
    proc = serving(repo, env, "mlflow", port)
    try:
        expected = [invocation(port, r)[:2] for r in requests]
    finally:
        stop_server(proc)
    assert [status for status, _ in expected] == [200] + [400] * len(BAD)

    port = free_port()
    proc = serving(repo, env, "ray", port)
    try:
        answered = [invocation(port, r) for r in requests]
        assert [(status, body) for status, body, _ in answered] == expected  # MLflow's contract, word for word
        assert {h["x-model-version"] for *_, h in answered} == {f"translation-en-de/{challenger(repo, env)}"}

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
        stop_server(proc)
