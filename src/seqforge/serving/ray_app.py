"""`seqforge serve --engine ray`: a registered version as a Ray Serve application on the Ray cluster (a local
instance, or the one at `RAY_ADDRESS`).

Each replica loads the version from the registry, by its pinned `models:/NAME/VERSION`, and answers
`POST /invocations` with MLflow's own request handling (`mlflow.pyfunc.scoring_server.invocations`): the same JSON
shapes, content types, request limits and HTTP 400 messages as `--engine mlflow`. Only the pyfunc's `decode` is
the replica's: a request's rows are checked and tokenised on their own, in the request's thread (a bad row is
that request's 400 and nobody else's), then decoded together with the rows of the requests that came with them
(`@serve.batch`: up to `serve.max_batch_size` requests, waiting at most `serve.batch_wait_ms` for them), and
each request gets its own rows' outputs back, in order. Every answer says which version gave it
(`X-Model-Version`); `GET /ping` and `/health` answer as MLflow's server does, `/ready` once a replica holds the
model (a replica takes traffic only then).
"""

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate
from pathlib import Path

import mlflow
from fastapi import FastAPI, Request
from fastapi.responses import Response
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.scoring_server import invocations
from ray import serve

from seqforge.config.shared import ServeCfg
from seqforge.training.budget.cluster import connect_ray

APP_NAME = "seqforge"
VERSION_HEADER = "X-Model-Version"

api = FastAPI()


def absolute_store(uri: str) -> str:
    """`uri` with a relative SQLite path made absolute: replicas do not run in this directory."""
    path = uri.removeprefix("sqlite:///")
    if uri.startswith("sqlite:///") and not Path(path).is_absolute():
        return f"sqlite:///{Path(path).resolve()}"
    return uri


@serve.deployment
@serve.ingress(api)
class ScoringReplica:
    """One copy of a registered version: MLflow's scoring contract, its decodes batched across requests."""

    def __init__(self, model_uri: str, store: str, cfg: dict) -> None:
        import torch  # in the replica only: the driver that deploys it needs none

        cfg = ServeCfg.model_validate(cfg)
        torch.set_num_threads(max(1, int(cfg.cpus_per_replica)))
        mlflow.set_tracking_uri(store)
        self.pyfunc = mlflow.pyfunc.load_model(model_uri)
        self.model = self.pyfunc.unwrap_python_model()
        self.schema = self.pyfunc.metadata.get_input_schema()
        self.version = model_uri.removeprefix("models:/")
        self.locked_decode = self.model.decode  # the pyfunc's own: one decode at a time
        self.model.decode = self.batched_decode  # what MLflow's `invocations` reaches through `predict`
        self.threads = ThreadPoolExecutor(max_workers=2 * cfg.max_batch_size + 2, thread_name_prefix="invocations")
        self.decode_batch.set_max_batch_size(cfg.max_batch_size)
        self.decode_batch.set_batch_wait_timeout_s(cfg.batch_wait_ms / 1000)
        self.loop: asyncio.AbstractEventLoop | None = None

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)  # set from `serve.*` in __init__
    async def decode_batch(self, requests: list[list[list[int]]]) -> list[list[str]]:
        """Each request's rows (token ids) -> their outputs, every row of the batch in one decode."""
        rows = [ids for request in requests for ids in request]
        outputs = await asyncio.to_thread(self.locked_decode, rows)
        ends = accumulate(len(request) for request in requests)
        return [outputs[end - len(request) : end] for request, end in zip(requests, ends, strict=True)]

    def batched_decode(self, src_ids: list[list[int]]) -> list[str]:
        """The pyfunc's `decode` in a request thread: wait for this request's rows to come back from a batch."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(self.decode_batch(src_ids), self.loop).result()

    @api.post("/invocations")
    async def invocations(self, request: Request) -> Response:
        """MLflow's scoring server's answer to this request, in a thread of the replica's own pool."""
        self.loop = asyncio.get_running_loop()
        body, content_type = await request.body(), request.headers.get("content-type", "")
        headers = {VERSION_HEADER: self.version}
        try:
            result = await self.loop.run_in_executor(
                self.threads, invocations, body, content_type, self.pyfunc, self.schema
            )
        except MlflowException as err:
            return Response(err.serialize_as_json(), err.get_http_status_code(), headers, media_type="application/json")
        return Response(result.response, result.status, headers, media_type=result.mimetype)

    @api.get("/ping")
    @api.get("/health")
    @api.get("/ready")
    async def ready(self) -> Response:
        """200 once this replica holds the model (Serve routes no request to a replica before that)."""
        return Response("\n", 200, {VERSION_HEADER: self.version}, media_type="application/json")


def run_ray_serve(model_uri: str, store: str, cfg: ServeCfg, host: str, port: int) -> None:
    """Deploy `model_uri` (a pinned `models:/NAME/VERSION`) on the Ray cluster, answer on `host:port` until
    SIGINT or SIGTERM, then take Serve down on the cluster."""
    connect_ray()
    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port})  # clients come to the head
    app = ScoringReplica.options(
        num_replicas=cfg.replicas,
        max_ongoing_requests=2 * cfg.max_batch_size + 2,
        ray_actor_options={"num_cpus": cfg.cpus_per_replica},
    ).bind(model_uri, absolute_store(store), cfg.model_dump())
    for sig in (signal.SIGINT, signal.SIGTERM):  # also while `serve.run` still waits for the replicas
        signal.signal(sig, _interrupt)
    try:
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        print(
            f"serving {model_uri.removeprefix('models:/')} on http://{host}:{port} with Ray Serve: "
            f"{cfg.replicas} replica(s) × {cfg.cpus_per_replica:g} CPU, batches of up to {cfg.max_batch_size} "
            f"requests within {cfg.batch_wait_ms:g} ms",
            flush=True,
        )
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()


def _interrupt(signum: int, frame) -> None:
    """SIGTERM as Ctrl-C: `run_ray_serve` takes Serve down on either."""
    raise KeyboardInterrupt
