"""Where a run trains and in what precision: workers and threads placed on the cluster's nodes
(`train.num_workers` / `cpus_per_worker: auto`), and `train.precision: auto` resolved against the hardware, with
bf16-mixed training that follows fp32's losses."""

import pytest
import torch

from seqforge.config.base import ConfigError
from seqforge.config.shared import TrainCfg
from seqforge.experiments.config import load_experiment
from seqforge.models.registry import build_model
from seqforge.training.budget.cluster import placement
from seqforge.training.worker.precision import autocast, lightning_precision, native_bf16, resolved


def cfg(**values) -> TrainCfg:
    return TrainCfg.model_validate(values)


def test_auto_places_one_worker_per_node_with_all_its_cores() -> None:
    nodes = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 2.0}]
    assert placement(cfg(), nodes) == (2, 2)
    assert placement(cfg(), [{"CPU": 16.0}]) == (1, 16)
    # a head node that keeps its CPUs to itself (ray start --num-cpus=0) gets no worker
    assert placement(cfg(), [{"CPU": 0.0}, {"CPU": 8.0}, {"CPU": 4.0}]) == (2, 4)  # the smallest node's cores


def test_auto_on_gpus_places_one_worker_per_gpu_sharing_its_nodes_cpus() -> None:
    nodes = [{"CPU": 16.0, "GPU": 2.0}, {"CPU": 4.0}, {"CPU": 12.0, "GPU": 1.0}]
    assert placement(cfg(use_gpu=True), nodes) == (3, 8)
    with pytest.raises(ConfigError, match="train.num_workers: auto: no Ray node has a GPU"):
        placement(cfg(use_gpu=True), [{"CPU": 4.0}])


def test_planning_on_this_machine_places_without_starting_ray(monkeypatch) -> None:
    import os

    import ray

    from seqforge.training.budget.cluster import placed

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = placed(TrainCfg())
    assert not ray.is_initialized()  # counted as Ray would count this machine, without a local instance
    assert cfg.num_workers == 1 and 1 <= cfg.cpus_per_worker <= os.cpu_count()


def test_given_workers_keep_one_cpu_each_unless_told() -> None:
    assert placement(cfg(num_workers=2), []) == (2, 1)  # as runs placed before `auto`; no cluster asked
    assert placement(cfg(num_workers=2, cpus_per_worker=3), []) == (2, 3)
    assert placement(cfg(cpus_per_worker=3), [{"CPU": 8.0}, {"CPU": 8.0}]) == (2, 3)


def test_worker_settings_are_numbers_or_auto_and_precisions_keep_their_old_names() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="a whole number ≥ 1, or auto"):
        cfg(num_workers=0)
    with pytest.raises(ValidationError, match="a whole number ≥ 1, or auto"):
        cfg(cpus_per_worker="all")
    assert cfg(precision="32-true").precision == "fp32"  # configs written before `auto`


def test_precision_auto_follows_the_hardware() -> None:
    assert resolved("fp32", False) == "fp32" and lightning_precision("fp32", False) == "32-true"
    assert resolved("bf16-mixed", False) == "bf16-mixed"
    assert resolved("auto", False) == ("bf16-mixed" if native_bf16(False) else "fp32")
    if not torch.cuda.is_available():
        assert resolved("auto", True) == "fp32"  # no GPU: nothing computes bf16 natively


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gru_bahdanau", "lstm_luong", "transformer"])
def test_bf16_mixed_training_follows_fp32(name: str) -> None:
    """The default models, same seed and batches: bf16-mixed losses stay within 2 % of fp32's at each of 20
    updates, and both learn (the last loss well under the first). On a CPU without native bf16 the bf16 products
    are emulated: slower, the same numbers."""
    vocab, rows, length = 300, 24, 12
    gen = torch.Generator().manual_seed(0)
    src = torch.randint(4, vocab, (rows, length), generator=gen)
    batch = {"src": src, "src_lens": torch.full((rows,), length), "tgt_in": src[:, :-1], "tgt_out": src[:, 1:]}

    def losses(precision: str) -> list[float]:
        torch.manual_seed(0)
        model = build_model(load_experiment(name).model, vocab, vocab).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        out = []
        for _ in range(20):
            with autocast(precision):
                logits = model(batch["src"], batch["src_lens"], batch["tgt_in"])
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch["tgt_out"].flatten())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            out.append(loss.item())
        return out

    fp32, bf16 = losses("fp32"), losses("bf16-mixed")
    assert fp32[-1] < 0.7 * fp32[0] and bf16[-1] < 0.7 * bf16[0]
    worst = max(abs(a - b) / a for a, b in zip(fp32, bf16, strict=True))
    assert worst < 0.02, f"bf16-mixed drifted {worst:.1%} from fp32"
