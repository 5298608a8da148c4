"""`conf/stack.yaml`: where the team stack's parts listen and keep their data, its credentials, and the
environment clients get (`seqforge stack env`)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from seqforge.config.base import CONF_DIR, Strict, read_yaml, validate


class PostgresCfg(Strict):
    port: int = 5433  # PostgreSQL's port on `host`
    user: str = "seqforge"  # the role MLflow connects as
    database: str = "mlflow"  # MLflow's backend store
    auth_database: str = "mlflow_auth"  # MLflow's basic-auth users and permissions


class SeaweedCfg(Strict):
    """Every port SeaweedFS listens on, its gRPC ones too: left to SeaweedFS, each gRPC port is its HTTP
    port + 10000, which lands in Ray's worker ports (10002-19999) or, from ports above 22767, in Linux's
    ephemeral range (32768-60999), where any outgoing connection may hold it and SeaweedFS exits."""

    master_port: int = 9333  # SeaweedFS master
    master_grpc_port: int = 9334  # the master's gRPC
    volume_port: int = 8081  # SeaweedFS volume server
    volume_grpc_port: int = 8082  # the volume server's gRPC
    filer_port: int = 8888  # SeaweedFS filer (behind the S3 gateway)
    filer_grpc_port: int = 8889  # the filer's gRPC
    s3_grpc_port: int = 8334  # the S3 gateway's gRPC (its HTTP port is `s3.port`)
    volume_size_limit_mb: int = 1024  # the largest volume SeaweedFS grows before it opens another


class S3Cfg(Strict):
    port: int = 8333  # the S3 gateway's port on `host`
    bucket: str = "seqforge"  # the bucket for MLflow artifacts, DVC's remote and Ray's checkpoints
    region: str = "us-east-1"  # the region clients name (SeaweedFS ignores it)


class MlflowServerCfg(Strict):
    port: int = 5050  # the MLflow server's port on `host`
    workers: int = 2  # server worker processes
    admin_username: str = "admin"  # the basic-auth administrator (its password is made at the first `stack up`)
    artifacts_prefix: str = "mlartifacts"  # where in the bucket the server keeps artifacts


class DvcRemoteCfg(Strict):
    remote: str = "stack"  # the DVC remote `stack up` makes the default
    prefix: str = "dvc"  # where in the bucket it keeps data


class RayStorageCfg(Strict):
    prefix: str = "ray"  # where in the bucket Ray keeps checkpoints and sweep state ($SEQFORGE_RAY_STORAGE)


class StackCfg(Strict):
    """`conf/stack.yaml`: the team stack on one machine (PostgreSQL, SeaweedFS S3, MLflow server with auth)."""

    dir: Path = Path(".stack")  # data, logs and credentials of the stack's services
    host: str = "127.0.0.1"  # the interface every service listens on
    postgres: PostgresCfg = PostgresCfg()
    seaweedfs: SeaweedCfg = SeaweedCfg()
    s3: S3Cfg = S3Cfg()
    mlflow: MlflowServerCfg = MlflowServerCfg()
    dvc: DvcRemoteCfg = DvcRemoteCfg()
    ray: RayStorageCfg = RayStorageCfg()

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.s3.port}"

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.mlflow.port}"

    def database_uri(self, creds: dict[str, str], database: str) -> str:
        return f"postgresql+psycopg://{self.postgres.user}:{creds['postgres_password']}@{self.host}:{self.postgres.port}/{database}"

    def ray_storage(self) -> str:
        """Ray's storage on the bucket, as a pyarrow URI (`paths.ray_storage` adds `/train`, `/tune`)."""
        return (
            f"s3://{self.s3.bucket}/{self.ray.prefix}?endpoint_override={self.host}:{self.s3.port}"
            f"&scheme=http&region={self.s3.region}"
        )


def load_stack(conf_dir: Path = CONF_DIR) -> StackCfg:
    path = conf_dir / "stack.yaml"
    return validate(StackCfg, read_yaml(path), str(path))


def credentials(cfg: StackCfg) -> dict[str, str]:
    """The stack's secrets: from the environment where set, else generated once and kept (mode 600) in
    `<dir>/credentials.json`, so a restarted stack and its data keep the same ones."""
    path = cfg.dir / "credentials.json"
    kept = json.loads(path.read_text()) if path.is_file() else {}
    from_env = {
        "mlflow_password": "MLFLOW_TRACKING_PASSWORD",
        "access_key": "AWS_ACCESS_KEY_ID",
        "secret_key": "AWS_SECRET_ACCESS_KEY",
        "postgres_password": "SEQFORGE_POSTGRES_PASSWORD",
        "server_secret": "MLFLOW_FLASK_SERVER_SECRET_KEY",
    }
    creds = {key: os.environ.get(var) or kept.get(key) or secrets.token_urlsafe(18) for key, var in from_env.items()}
    if creds != kept:
        cfg.dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(creds, indent=2))
    return creds


def env(cfg: StackCfg, creds: dict[str, str]) -> dict[str, str]:
    """What a client of the stack exports: the pipeline, `seqforge` and DVC read these."""
    return {
        "MLFLOW_TRACKING_URI": cfg.tracking_uri,
        "MLFLOW_TRACKING_USERNAME": cfg.mlflow.admin_username,
        "MLFLOW_TRACKING_PASSWORD": creds["mlflow_password"],
        "AWS_ACCESS_KEY_ID": creds["access_key"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
        "AWS_DEFAULT_REGION": cfg.s3.region,
        "SEQFORGE_RAY_STORAGE": cfg.ray_storage(),
    }


def exports(variables: dict[str, str]) -> str:
    """`variables` as shell `export` lines (`source`-able)."""
    import shlex

    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in variables.items())
