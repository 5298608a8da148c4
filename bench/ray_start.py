"""What a Ray Train callback's module costs every run's start: Ray Train's controller actor imports it.

    python -m bench.ray_start [--rounds 3]

Times `TorchTrainer.fit` of an empty loop (2 workers, 1 CPU each, on `RAY_ADDRESS` or a local Ray) with
one no-op `UserCallback` whose module imports (a) only `ray.train`, (b) also Lightning and MLflow, as the
controller's callback modules once did (before they were split from the worker's), and (c) the callbacks every
train stage passes (`EpochLines`, `RegisteredCheckpoints`). Rounds alternate the variants; the table shows the median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

CALLBACKS = {
    "light": "from ray.train import UserCallback\n",
    "lightning+mlflow": "import lightning.pytorch\nimport mlflow\nfrom ray.train import UserCallback\n",
}


def empty_loop(config: dict) -> None:
    import ray.train

    ray.train.report({"done": 1})


def callbacks(variant: str, queue) -> list:
    """The variant's callbacks: a no-op from a generated module, or the train stage's own."""
    import importlib

    if variant == "seqforge":
        from seqforge.training.controller.checkpoint_queue import RegisteredCheckpoints
        from seqforge.training.controller.progress import EpochLines

        return [RegisteredCheckpoints(queue), EpochLines("bench", None, queue)]
    return [importlib.import_module(f"bench_cb_{variant.replace('+', '_')}").NoOp()]


def fit_seconds(variant: str, storage: str, queue) -> float:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    start = time.perf_counter()
    TorchTrainer(
        empty_loop,
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(
            name=f"{variant.replace('+', '_')}-{time.time_ns()}",
            storage_path=storage,
            callbacks=callbacks(variant, queue),
        ),
    ).fit()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import os
    import sys

    import ray
    from ray.util.queue import Queue

    with tempfile.TemporaryDirectory() as tmp:
        for variant, imports in CALLBACKS.items():
            Path(tmp, f"bench_cb_{variant.replace('+', '_')}.py").write_text(
                f"{imports}\n\nclass NoOp(UserCallback):\n    pass\n"
            )
        sys.path.insert(0, tmp)
        path = os.pathsep.join([tmp, str(Path("src").resolve()), os.environ.get("PYTHONPATH", "")])
        ray.init(
            address=os.environ.get("RAY_ADDRESS") or "local",
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
        )
        queue = Queue(actor_options={"num_cpus": 0})
        variants = [*CALLBACKS, "seqforge"]
        times: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for variant in variants:
                times[variant].append(fit_seconds(variant, str(Path(tmp, "runs")), queue))

    table = Table(
        title=f"Ray Train start: an empty 2-worker run, median of {args.rounds} "
        f"({int(ray.cluster_resources().get('CPU', 0))} CPUs)"
    )
    for column in ("callback module imports", "fit s (median)", "runs"):
        table.add_column(column)
    base = statistics.median(times["light"])
    for variant, seconds in times.items():
        median = statistics.median(seconds)
        table.add_row(variant, f"{median:.1f} ({median / base:.2f}x)", " ".join(f"{s:.1f}" for s in seconds))
    Console().print(table)


if __name__ == "__main__":
    main()
