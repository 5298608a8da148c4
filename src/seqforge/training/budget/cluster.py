"""The Ray cluster a run trains on, joined by the driver before it plans: its nodes decide how many workers a
run gets and how many threads each (`train.num_workers` and `train.cpus_per_worker` set to `auto`).

One worker per node with all its cores (intra-op threads), data parallelism across nodes and GPUs only: on
two cores one process with two threads trains a model of OpenNMT-py's default size faster than two one-thread
DDP processes, and the small default GRU about as fast (`python -m bench.placement`).
"""

from __future__ import annotations

import os

from seqforge.config.base import ConfigError
from seqforge.config.shared import TrainCfg
from seqforge.tracking.client import tracking_uri
from seqforge.training.worker.fault_variable import VARIABLE as FAULT_VARIABLE


def ray_runtime_env() -> dict:
    """The Ray job environment that sends every Ray process (Tune trials, Train workers, on any node)
    to this driver's MLflow store and object store: its `MLFLOW_*` and `AWS_*` settings, credentials
    included (workers write checkpoints to `SEQFORGE_RAY_STORAGE`), with the tracking URI resolved;
    its Ray Train knobs (`RAY_TRAIN_*`, e.g. `RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`, read by the run's
    controller); and an injected fault (`seqforge.training.worker.faults`). Ray processes inherit their
    node's environment, not the driver's."""
    forwarded = {
        k: v for k, v in os.environ.items() if k.startswith(("MLFLOW_", "AWS_", "RAY_TRAIN_")) or k == FAULT_VARIABLE
    }
    return {"env_vars": forwarded | {"MLFLOW_TRACKING_URI": tracking_uri()}}


def connect_ray() -> None:
    """Join the Ray cluster at `RAY_ADDRESS` (else start a local instance), once per process. Workers'
    output goes to Ray's log files; the driver prints epoch lines."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address=os.environ.get("RAY_ADDRESS") or "local",
            log_to_driver=False,
            configure_logging=False,
            runtime_env=ray_runtime_env(),
        )


def cluster_nodes() -> list[dict[str, float]]:
    """The resources (CPU, GPU, ...) of each alive node: the Ray cluster's when this process has joined one or
    `RAY_ADDRESS` names one; else this machine's, counted as the local instance `connect_ray` would start
    counts them, without starting it (planning stays quick)."""
    import ray

    if ray.is_initialized() or os.environ.get("RAY_ADDRESS"):
        connect_ray()
        return [node["Resources"] for node in ray.nodes() if node["Alive"]]
    import torch
    from ray._private.utils import get_num_cpus  # Ray's own count: cgroup quotas and affinity included

    return [{"CPU": float(get_num_cpus()), "GPU": float(torch.cuda.device_count())}]


def placement(cfg: TrainCfg, nodes: list[dict[str, float]]) -> tuple[int, int]:
    """(workers, CPUs per worker) of `cfg` on a cluster of `nodes`. `num_workers: auto`: one worker per node
    with a CPU, or with `use_gpu` one per GPU; `cpus_per_worker: auto`: then the smallest node's CPUs
    (shared among its GPUs), and 1 beside a number of workers given."""
    if cfg.num_workers != "auto":
        return cfg.num_workers, 1 if cfg.cpus_per_worker == "auto" else cfg.cpus_per_worker
    workers_on = [(n, int(n.get("GPU", 0)) if cfg.use_gpu else 1) for n in nodes if n.get("CPU", 0) >= 1]
    usable = [(n, k) for n, k in workers_on if k]
    if not usable:
        raise ConfigError(f"train.num_workers: auto: no Ray node has {'a GPU' if cfg.use_gpu else 'a CPU'}")
    workers = sum(k for _, k in usable)
    if cfg.cpus_per_worker != "auto":
        return workers, cfg.cpus_per_worker
    return workers, max(1, min(int(n["CPU"]) // k for n, k in usable))


def placed(cfg: TrainCfg) -> TrainCfg:
    """`cfg` with its workers and CPUs per worker resolved (`placement`); joins the cluster only when
    `num_workers` is `auto`."""
    if cfg.num_workers != "auto" and cfg.cpus_per_worker != "auto":
        return cfg
    nodes = cluster_nodes() if cfg.num_workers == "auto" else []
    workers, cpus = placement(cfg, nodes)
    return cfg.model_copy(update={"num_workers": workers, "cpus_per_worker": cpus})
