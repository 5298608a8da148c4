"""`seqforge serve`: a registered model over HTTP, on Ray Serve or MLflow's scoring server."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from seqforge.cli.app import _fail, _tracking, app
from seqforge.cli.models import _model_uri, _pinned
from seqforge.config.base import ConfigError
from seqforge.config.shared import load_config
from seqforge.tracking.client import tracking_uri


class Engine(StrEnum):
    """What `seqforge serve` serves with."""

    auto = "auto"
    ray = "ray"
    mlflow = "mlflow"


def _ray_serve_installed() -> bool:
    try:
        import ray.serve  # noqa: F401  (the `serve` extra: Ray Serve's own dependencies)
    except ImportError:
        return False
    return True


@app.command()
def serve(
    model: Annotated[str, typer.Option("--model", "-m", help="NAME@ALIAS or NAME/VERSION")],
    port: Annotated[int, typer.Option(help="port on --host")] = 5001,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    engine: Annotated[
        Engine,
        typer.Option(
            help="ray: Ray Serve on the Ray cluster (batching, replicas: serve.* in conf/); mlflow: MLflow's "
            "scoring server; auto: ray where Ray Serve is installed",
        ),
    ] = Engine.auto,
    workers: Annotated[
        int | None, typer.Option(min=1, help="--engine mlflow: server processes (default: one per CPU core)")
    ] = None,
    follow_alias: Annotated[
        bool,
        typer.Option(
            "--follow-alias",
            help="--engine ray: when the alias of --model moves (promote, the MLflow UI), roll out its new version "
            "replica by replica (checked every serve.follow_every_s)",
        ),
    ] = False,
) -> None:
    """Serve a registered model (POST /invocations, MLflow's JSON shapes), its alias resolved now (or followed).

    `--engine ray` deploys it on the Ray cluster (`RAY_ADDRESS`, else a local instance) as Ray Serve replicas that
    decode the requests arriving together as one batch. `--engine mlflow` runs MLflow's scoring server: `--workers`
    processes each decode one request at a time with an equal share of the cores as torch threads. A model, alias
    or version the registry does not hold is one line (exit 2) before anything starts."""
    import subprocess

    use_ray = engine is Engine.ray or (engine is Engine.auto and _ray_serve_installed())
    if follow_alias and not (use_ray and "@" in model and "/" not in model):
        raise typer.BadParameter("needs --engine ray and a --model NAME@ALIAS", param_hint="--follow-alias")
    uri = _pinned(_model_uri(model))
    if use_ray:
        try:
            from seqforge.serving.ray_app import run_ray_serve
        except ImportError as err:
            raise _fail(
                "serve", f"--engine ray needs Ray Serve ({err}): install seqforge[serve], or --engine mlflow"
            ) from None
        try:
            settings = load_config().serve
        except ConfigError as err:
            raise _fail("serve", err) from None
        run_ray_serve(uri, tracking_uri(), settings, host, port, model if follow_alias else None)
        return
    workers = workers or os.cpu_count() or 1
    threads = str(max(1, (os.cpu_count() or 1) // workers))  # torch reads these when a server process starts
    # MLflow starts `uvicorn` by name: put this interpreter's bin/ first so an unactivated venv works
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": _tracking(),
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        uri,
        "--env-manager",
        "local",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    raise typer.Exit(subprocess.run(cmd, env=env, check=False).returncode)
