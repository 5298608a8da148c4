"""The team stack (`seqforge stack up`, what `make stack` runs): PostgreSQL, SeaweedFS S3 and an
authenticated MLflow server on loopback, with the pipeline, DVC and Ray checkpoints going through it.

One stack per module, on its own ports and folder, in a copy of the session's `smoke_data` (the smoke
profile's prepared and tokenized data, nothing trained) trimmed by configuration to the translation task and
one experiment, whose train, evaluate and register stages run through the stack, each train stage on the local
Ray instance it starts: no session cluster or server, so `make test-ci` runs this module beside the `shared`
tests. Needs Debian's postgresql (`.ci/run` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bench.relay import Switch
from helpers import ROOT, copy_repo, run

pytestmark = pytest.mark.slow

EXPERIMENT, MODEL_NAME = "gru_bahdanau", "translation-en-de"
# apart from conf/stack.yaml's (a developer's own stack may be up), below Linux's ephemeral ports (32768-)
PORTS = {"postgres": 25433, "master": 29333, "volume": 28081, "filer": 28888, "s3": 28333, "mlflow": 25050}
GRPC_PORTS = {"master_grpc_port": 29334, "volume_grpc_port": 28082, "filer_grpc_port": 28889, "s3_grpc_port": 28334}


def stack_conf(stack_dir: Path) -> dict:
    """conf/stack.yaml on the test's ports and folder."""
    conf = yaml.safe_load((ROOT / "conf" / "stack.yaml").read_text())
    conf["dir"] = str(stack_dir)
    conf["postgres"]["port"] = PORTS["postgres"]
    conf["seaweedfs"].update(
        master_port=PORTS["master"], volume_port=PORTS["volume"], filer_port=PORTS["filer"], **GRPC_PORTS
    )
    conf["s3"]["port"], conf["mlflow"]["port"] = PORTS["s3"], PORTS["mlflow"]
    return conf


def parse_exports(text: str) -> dict[str, str]:
    import shlex

    return {
        k: v
        for k, _, v in (
            shlex.split(line.removeprefix("export "))[0].partition("=")
            for line in text.splitlines()
            if line.startswith("export ")
        )
    }


@dataclass(frozen=True)
class StoreDown:
    """The pipeline's first training, whose object store went down after the first checkpoint."""

    returncode: int
    stderr: str
    seconds: float  # from the cut to the stage's end
    exported: bool  # a model was exported anyway
    repro: str  # the `dvc repro` after it: its output


@pytest.fixture(scope="module")
def stack(smoke_data, tmp_path_factory):
    """(repo, env, store_down): the stack up, and the smoke pipeline run through it (`dvc repro`, as `make
    smoke`), its training with a fault: the object store cut off (a TCP switch in front of its port) once
    the first checkpoint is stored and registered, so the stage fails; the `dvc repro` that follows
    resumes that Ray run from its last complete checkpoint, through the store, and evaluates and
    registers the model."""
    smoke, smoke_env = smoke_data
    base = tmp_path_factory.mktemp("stack")
    # the smoke profile's data and DVC cache; nothing trained, no local MLflow store or Ray storage
    repo = copy_repo(smoke, base / "seqforge", "mlflow.db", "mlartifacts", "runs", "models")
    # PostgreSQL runs as the postgres user when the tests run as root: its folder must be reachable
    stack_dir = Path(tempfile.mkdtemp(prefix="seqforge-stack-", dir="/var/tmp"))
    stack_dir.chmod(0o755)
    for name in (
        "tasks/chatbot",
        "experiments/chatbot_gru_bahdanau",
        "experiments/chatbot_transformer",
        "experiments/lstm_luong",
        "experiments/transformer",
        "tune/chatbot_gru_bahdanau",
        "tune/transformer",
    ):
        (repo / "conf" / f"{name}.yaml").unlink(missing_ok=True)  # one task, one experiment: configuration, no code
    (repo / "conf" / "stack.yaml").write_text(yaml.safe_dump(stack_conf(stack_dir), sort_keys=False))
    profile = yaml.safe_load((repo / "conf" / "profiles" / "smoke.yaml").read_text())
    profile["families"]["rnn"]["train"].update(checkpoint_retries=2)  # 1 + 2 s of waiting for the store
    (repo / "conf" / "profiles" / "smoke.yaml").write_text(yaml.safe_dump(profile))
    env = dict(smoke_env)
    run(["seqforge", "sync"], repo, env)
    for cmd in (
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one task"],
    ):
        run(cmd, repo, env)
    try:
        env.update(parse_exports(run(["seqforge", "stack", "up"], repo, env).stdout))
        switch = Switch(PORTS["s3"])
        storage = env["SEQFORGE_RAY_STORAGE"].replace(f"127.0.0.1:{PORTS['s3']}", f"127.0.0.1:{switch.port}")
        train = subprocess.Popen(
            [sys.executable, "-m", "pipelines.train", EXPERIMENT],
            cwd=repo,
            env={**env, "SEQFORGE_RAY_STORAGE": storage},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 600
        # the first checkpoint stored and registered (Ray's snapshot of its checkpoints written after it)
        while not {"checkpoint.ckpt", "checkpoint_manager_snapshot.json"} <= {
            k.rsplit("/", 1)[-1] for k in bucket_keys(repo, env, "ray/train/")
        }:
            assert train.poll() is None and time.monotonic() < deadline, train.communicate()
            time.sleep(1)
        switch.cut()  # the next checkpoints meet a store that does not answer
        started = time.monotonic()
        _, stderr = train.communicate(timeout=600)
        down = StoreDown(
            train.returncode,
            stderr,
            time.monotonic() - started,
            (repo / "models" / EXPERIMENT / "model.pt").exists(),
            run(["dvc", "repro"], repo, env).stdout,
        )
        yield repo, env, down
    finally:
        run(["seqforge", "stack", "down"], repo, env, check=False)
        shutil.rmtree(stack_dir, ignore_errors=True)


def test_seaweedfs_listens_on_its_configured_ports_and_says_why_it_cannot(tmp_path) -> None:
    """SeaweedFS's gRPC ports are the configured ones, not its HTTP ports + 10000: from ports above 22767
    those land in Linux's ephemeral range, where any outgoing connection may hold one (CI once saw SeaweedFS
    exit so, with status 255 and no reason). A configured port that is taken stops it with SeaweedFS's reason."""
    from seqforge.stack.config import SeaweedCfg, StackCfg, credentials
    from seqforge.stack.processes import StackError, stop
    from seqforge.stack.services import s3_client, start_seaweedfs

    sw = SeaweedCfg(
        master_port=27333,
        master_grpc_port=27334,
        volume_port=27081,
        volume_grpc_port=27082,
        filer_port=27888,
        filer_grpc_port=27889,
        s3_grpc_port=27336,
    )
    cfg = StackCfg(dir=tmp_path, seaweedfs=sw, s3={"port": 27335, "bucket": "held"})
    (tmp_path / "logs").mkdir()
    creds = credentials(cfg)
    held = []
    for port in (sw.master_port, sw.volume_port, sw.filer_port, cfg.s3.port, sw.s3_grpc_port):
        sock = socket.socket()
        sock.bind(("127.0.0.1", port + 10000 if port != sw.s3_grpc_port else port))
        sock.listen()
        held.append(sock)
    try:
        why = rf"SeaweedFS exited with status \d+: .*127\.0\.0\.1:{sw.s3_grpc_port}: bind: address already in use"
        with pytest.raises(StackError, match=why):
            start_seaweedfs(cfg, creds)
        held.pop().close()  # the gRPC port free, the ports SeaweedFS would have taken still held
        start_seaweedfs(cfg, creds)
        assert "held" in {b["Name"] for b in s3_client(cfg, creds).list_buckets()["Buckets"]}
    finally:
        stop(cfg, "seaweedfs")
        for sock in held:
            sock.close()


def request(url: str, user: str | None = None, password: str | None = None) -> int:
    """The HTTP status of a GET, with basic auth when `user` is given."""
    import base64

    req = urllib.request.Request(url)
    if user is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def bucket_keys(repo: Path, env: dict, prefix: str) -> list[str]:
    code = (
        "import json, sys; from seqforge.stack.services import s3_client; from seqforge.stack.config import "
        "credentials, load_stack; cfg = load_stack(); "
        "c = s3_client(cfg, credentials(cfg)); print(json.dumps([o['Key'] for p in c.get_paginator("
        "'list_objects_v2').paginate(Bucket=cfg.s3.bucket, Prefix=sys.argv[1]) for o in p.get('Contents', [])]))"
    )
    return json.loads(run([sys.executable, "-c", code, prefix], repo, env).stdout)


def test_the_server_refuses_requests_without_valid_credentials(stack) -> None:
    repo, env, _ = stack
    api = f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search?max_results=5"
    user, password = env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]
    assert request(api) == 401
    assert request(api, user, "wrong-password") == 401
    assert request(api, user, password) == 200
    # the CLI without credentials: one clear line, no traceback
    anonymous = {k: v for k, v in env.items() if k not in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    out = run(["seqforge", "models"], repo, anonymous, check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr and "401" in out.stderr + out.stdout


def test_smoke_pipeline_tracks_registers_and_checkpoints_through_the_stack(stack) -> None:
    import mlflow
    import psycopg

    repo, env, _ = stack
    # nothing local: no SQLite store, no local artifacts, no local Ray storage
    assert not (repo / "mlflow.db").exists() and not (repo / "mlartifacts").exists() and not (repo / "runs").exists()
    checkpoints = bucket_keys(repo, env, f"ray/train/{EXPERIMENT}-")
    assert any(re.search(r"/checkpoint_[^/]+/checkpoint\.ckpt$", k) for k in checkpoints), checkpoints[:10]
    registered = json.loads((repo / "reports" / EXPERIMENT / "registered.json").read_text())
    with pytest.MonkeyPatch.context() as mp:
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            mp.setenv(key, env[key])
        client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
        version = client.get_model_version_by_alias(MODEL_NAME, "challenger")
        run_info = client.get_run(version.run_id).info
    assert version.version == str(registered["version"]) and run_info.status == "FINISHED"
    assert run_info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied by the server to the bucket
    stored = bucket_keys(repo, env, f"mlartifacts/{run_info.experiment_id}/")
    assert any(k.endswith("/evaluation/samples.json") or "attention" in k for k in stored), stored[:10]
    conf = yaml.safe_load((repo / "conf" / "stack.yaml").read_text())
    creds = json.loads((Path(conf["dir"]) / "credentials.json").read_text())
    with psycopg.connect(
        host="127.0.0.1",
        port=PORTS["postgres"],
        user=conf["postgres"]["user"],
        password=creds["postgres_password"],
        dbname=conf["postgres"]["database"],
    ) as db:
        assert db.execute("SELECT status FROM runs WHERE run_uuid = %s", (version.run_id,)).fetchone() == ("FINISHED",)


def test_push_then_a_fresh_clone_pulls_reproduces_nothing_and_translates(stack, tmp_path) -> None:
    repo, env, _ = stack
    for cmd in (
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"],
        ["dvc", "push"],
    ):
        run(cmd, repo, env)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    # a team member points the committed `stack` remote at the team's endpoint once (here: the test's port)
    run(["dvc", "remote", "modify", "--local", "stack", "endpointurl", f"http://127.0.0.1:{PORTS['s3']}"], clone, env)
    run(["dvc", "pull", "-r", "stack"], clone, env)
    assert (clone / "models" / EXPERIMENT / "model.pt").is_file()
    assert (clone / "artifacts" / "tokenized" / "translation" / "tokenizer.json").is_file()
    repro = run(["dvc", "repro"], clone, env)
    assert "Running stage" not in repro.stdout, repro.stdout[-2000:]
    assert json.loads(run(["dvc", "status", "--json", "dvc.yaml"], clone, env).stdout) == {}
    out = run(
        ["seqforge", "translate", "--model", f"{MODEL_NAME}@challenger", "A man is riding a bicycle ."], clone, env
    )
    assert out.stdout.strip(), out.stderr[-2000:]
    assert not (clone / "mlflow.db").exists()


def test_checkpoint_with_the_object_store_down_retries_then_fails_clearly(stack) -> None:
    """The fixture's first training: the store cut after its first checkpoint; then `dvc repro`."""
    repo, _, down = stack
    assert down.returncode != 0
    assert "Traceback" not in down.stderr, down.stderr[-3000:]
    last = down.stderr.strip().splitlines()[-1]
    assert last.startswith(f"train: training {EXPERIMENT} stopped: checkpoint storage") and "retries" in last, last
    assert down.seconds < 300  # retried for a bounded time, not forever
    assert not down.exported  # nothing half-written was taken
    # the stored run resumed from its last complete checkpoint (epoch 1's), through the store again
    ran = set(re.findall(r"Running stage '([^']+)'", down.repro))
    assert ran == {"resolve", *(f"{stage}@{EXPERIMENT}" for stage in ("train", "evaluate", "register"))}, ran
    epochs = [int(e) for e in re.findall(rf"{EXPERIMENT} epoch (\d+) \|", down.repro)]
    assert epochs == [2], down.repro[-2000:]
    assert (repo / "models" / EXPERIMENT / "model.pt").is_file()
