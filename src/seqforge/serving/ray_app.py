"""`seqforge serve --engine ray`: a registered version as a Ray Serve application on the Ray cluster (a local
instance, or the one at `RAY_ADDRESS`).

Each replica loads the version from the registry, by its pinned `models:/NAME/VERSION`, and answers
`POST /invocations` with MLflow's own request handling (`mlflow.pyfunc.scoring_server.invocations`): the same JSON
shapes, content types, request limits and HTTP 400 messages as `--engine mlflow`. Only the pyfunc's `decode` is
the replica's: a request's rows are checked and tokenised on their own, in the request's thread (a bad row is
that request's 400 and nobody else's), then decoded together with the rows of the requests that queued while the
decoder was busy (`serving.batching`: up to `serve.max_batch_size` requests, waiting at most `serve.batch_wait_ms`
for more), and each request gets its own rows' outputs back, in order. Every answer says which version gave it
(`X-Model-Version`); `GET /ping` and `/health` answer as MLflow's server does, `/ready` once a replica holds the
model (a replica takes traffic only then).
"""

import asyncio
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import ray
from fastapi import FastAPI, Request
from fastapi.responses import Response
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.scoring_server import invocations
from ray import serve
from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

from seqforge.config.shared import ServeCfg
from seqforge.serving.batching import DecodeBatcher
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
        self.batcher = DecodeBatcher(self.model.decode, cfg.max_batch_size, cfg.batch_wait_ms / 1000)
        self.model.decode = self.batched_decode  # what MLflow's `invocations` reaches through `predict`
        self.threads = ThreadPoolExecutor(max_workers=2 * cfg.max_batch_size + 2, thread_name_prefix="invocations")
        self.loop: asyncio.AbstractEventLoop | None = None

    def batched_decode(self, src_ids: list[list[int]]) -> list[str]:
        """The pyfunc's `decode` in a request thread: wait for this request's rows to come back from a batch."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(self.batcher.submit(src_ids), self.loop).result()

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


def run_ray_serve(model_uri: str, store: str, cfg: ServeCfg, host: str, port: int, follow: str | None = None) -> None:
    """Deploy `model_uri` (a pinned `models:/NAME/VERSION`) on the Ray cluster, answer on `host:port` until
    SIGINT or SIGTERM, then take Serve down on the cluster. With `follow` (`NAME@ALIAS`), ask the registry every
    `serve.follow_every_s` where the alias points, and roll out the version it moved to."""
    connect_ray()
    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port})  # clients come to the head
    store = absolute_store(store)
    for sig in (signal.SIGINT, signal.SIGTERM):  # also while `serve.run` still waits for the replicas
        signal.signal(sig, _interrupt)
    try:
        _deploy(model_uri, store, cfg)
        print(
            f"serving {model_uri.removeprefix('models:/')} on http://{host}:{port} with Ray Serve: "
            f"{cfg.replicas}{f'-{cfg.max_replicas}' if cfg.max_replicas else ''} replica(s) × "
            f"{cfg.cpus_per_replica:g} CPU, batches of up to {cfg.max_batch_size} "
            f"requests within {cfg.batch_wait_ms:g} ms"
            + (f"; following {follow} every {cfg.follow_every_s:g} s" if follow else ""),
            flush=True,
        )
        while follow is None:
            signal.pause()
        while True:
            time.sleep(cfg.follow_every_s)
            model_uri = _follow(model_uri, follow, store, cfg)
    except KeyboardInterrupt:
        pass
    finally:
        _shut_down()


def _shut_down(timeout: float = 120) -> None:
    """Take Serve down on the cluster, and return once it is down: its controller gone, having stopped every
    replica first. Serve's own call stops waiting after 30 s and leaves the controller finishing in the background,
    where the next `serve` would find it half down, and its replicas still holding their CPUs."""
    serve.shutdown()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        except ValueError:  # no such actor: Serve is down
            return
        time.sleep(0.5)
    print(f"Ray Serve was still shutting down on the cluster {timeout:.0f} s after it was asked to", flush=True)


def _deploy(model_uri: str, store: str, cfg: ServeCfg) -> None:
    """Run the application on `model_uri`, until its replicas are up. When it runs another version already, Serve
    rolls it out replica by replica: where the cluster has room for one more replica, a new one starts beside the
    old ones (`max_surge_percent`), takes traffic once it holds the model, then an old one drains and stops;
    without room, an old one drains and stops first, and the others take its traffic meanwhile."""
    room = ray.available_resources().get("CPU", 0) >= cfg.cpus_per_replica
    app = ScoringReplica.options(
        **replica_count(cfg),
        max_ongoing_requests=2 * cfg.max_batch_size + 2,
        ray_actor_options={"num_cpus": cfg.cpus_per_replica},
        max_surge_percent=1 if room else 0,  # 1 %: rounds up to one replica
    ).bind(model_uri, store, cfg.model_dump())
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)


def replica_count(cfg: ServeCfg) -> dict:
    """Serve's options for how many replicas run: `serve.replicas` of them, or, with `serve.max_replicas`, between
    the two, a replica added while each has more than a full batch (`serve.max_batch_size`) of requests ongoing
    (decoding or waiting) on average."""
    if cfg.max_replicas is None:
        return {"num_replicas": cfg.replicas}
    bounds = {"min_replicas": cfg.replicas, "max_replicas": cfg.max_replicas}
    return {"autoscaling_config": bounds | {"target_ongoing_requests": cfg.max_batch_size}}


def _follow(model_uri: str, follow: str, store: str, cfg: ServeCfg) -> str:
    """The version now served: `model_uri`, or the one `follow` (`NAME@ALIAS`) moved to, rolled out."""
    name, _, alias = follow.partition("@")
    try:
        version = mlflow.MlflowClient(store).get_model_version_by_alias(name, alias).version
    except MlflowException as err:  # the store down, the alias deleted: keep serving what runs
        print(f"{follow}: cannot read the registry ({err.message.splitlines()[0]}); still serving", flush=True)
        return model_uri
    moved = f"models:/{name}/{version}"
    if moved != model_uri:
        print(f"{follow} moved to version {version}: rolling out, replica by replica", flush=True)
        _deploy(moved, store, cfg)
        print(f"{follow}: version {version} serves on every replica", flush=True)
    return moved


def _interrupt(signum: int, frame) -> None:
    """SIGTERM as Ctrl-C: `run_ray_serve` takes Serve down on either."""
    raise KeyboardInterrupt
