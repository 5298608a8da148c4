"""The GPU check's setup (`bench/gpu_check.py`): experiments at a profile whatever the checkout's active one,
the tokenized task, real token-budget batches, the device, one timed training step and the profiler's top ops."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path


# -- configuration at a profile, whatever the checkout's active one -------------------------------
def profile_conf(profile: str, root: Path) -> Path:
    """A copy of `conf/` with `profile` active (the checkout's own conf/ is never touched)."""
    from seqforge.config.base import set_profile

    conf = root / f"conf-{profile}"
    if not conf.is_dir():
        shutil.copytree("conf", conf)
        set_profile(profile, conf)
    return conf


def experiment_at(name: str, profile: str, root: Path, precision: str | None = None):
    """(experiment, train settings, task) of `name` under `profile`; `precision` replaces the profile's. The
    settings of one process on this machine: one worker, the precision resolved (`auto`: this machine's)."""
    from seqforge.config.shared import load_config
    from seqforge.experiments.config import load_experiment
    from seqforge.tasks.registry import load_task
    from seqforge.training.worker.precision import resolved

    conf = profile_conf(profile, root)
    exp = load_experiment(name, conf)
    train = exp.train_config(load_config(conf).train)
    precision = resolved(precision or train.precision, train.use_gpu)
    train = train.model_copy(update={"precision": precision, "num_workers": 1, "cpus_per_worker": 1})
    return exp, train, load_task(exp.task, conf)


# -- data -----------------------------------------------------------------------------------------
def load_tokenized(data: Path):
    """(splits, tokenizer) of a tokenized task folder (`artifacts/tokenized/<task>`)."""
    from datasets import load_from_disk

    from seqforge.data.tokenizer import SubwordTokenizer

    return load_from_disk(str(data)), SubwordTokenizer.load(data / "tokenizer.json")


def training_batches(train_split, batch_tokens: int, count: int, device) -> list[dict]:
    """The first `count` token-budget batches of a shuffled epoch (the trainer's own sampler), on `device`."""
    from seqforge.data.batching import TokenBudgetBatchSampler, collate
    from seqforge.data.datasets import TokenizedSplit

    data = TokenizedSplit(train_split)
    plan = list(TokenBudgetBatchSampler(data.lengths, batch_tokens, shuffle=True, seed=0))[:count]
    return [{k: v.to(device) for k, v in collate(data.__getitems__(idx)).items()} for idx in plan]


def tokens_in(batch: dict) -> int:
    """Source + target tokens of a batch, EOS included, padding excluded (how tokens/s counts everywhere here)."""
    from seqforge.data.tokenizer import PAD

    return int(batch["src_lens"].sum() + (batch["tgt_out"] != PAD).sum())


# -- the parts (each runs in a child process: `python -m bench.gpu_check --part ...`) -------------
def device_named(name: str):
    import torch

    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_mib(device) -> float:
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB; the whole process


def build_module(exp, tokenizer, task):
    from seqforge.tasks.registry import task_kind
    from seqforge.training.worker.module import Seq2SeqModule

    vocab = tokenizer.vocab_size("source"), tokenizer.vocab_size("target")
    return Seq2SeqModule(
        exp.model_dump(mode="json"), *vocab, tokenizer.dumps(), task.kind, task_kind(task.kind).validation_bleu(task)
    )


def training_step(module, exp, train, device, compiled: bool):
    """One AdamW update of `module` on a batch, as the trainer does it: autocast to the train precision,
    label-smoothed loss in fp32, clipped gradients."""
    import torch

    from seqforge.training.worker.precision import autocast as train_autocast

    opt = torch.optim.AdamW(module.parameter_groups(), lr=exp.optim.lr, betas=exp.optim.betas)
    autocast = train_autocast(train.precision, device)
    model = torch.compile(module.model, dynamic=True) if compiled else module.model

    def step(batch: dict) -> None:
        with autocast:
            logits = model(batch["src"], batch["src_lens"], batch["tgt_in"])
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(),
            batch["tgt_out"].flatten(),
            ignore_index=0,
            label_smoothing=exp.optim.label_smoothing,
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), exp.optim.clip_norm or float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def top_ops(prof, device, count: int = 12) -> list[dict]:
    """The profiler's ops with the most self time (on the GPU where there is one)."""
    rows = []
    for event in prof.key_averages():
        gpu_us = getattr(event, "self_device_time_total", 0) if device.type == "cuda" else 0
        rows.append(
            {
                "op": event.key[:60],
                "calls": event.count,
                "self_cpu_ms": round(event.self_cpu_time_total / 1e3, 2),
                "self_gpu_ms": round(gpu_us / 1e3, 2),
            }
        )
    rows.sort(key=lambda r: (r["self_gpu_ms"], r["self_cpu_ms"]), reverse=True)
    return rows[:count]


def training_setup(args: argparse.Namespace, count: int, compiled: bool):
    """What a training part starts from: the device, the experiment at its profile (its train settings and
    task), the tokenized splits, the module in training mode, `count` real batches and its step function."""
    import torch

    device = device_named(args.device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as root:
        exp, train, task = experiment_at(args.experiment, args.profile, Path(root), args.precision)
    splits, tokenizer = load_tokenized(args.data)
    module = build_module(exp, tokenizer, task).to(device).train()
    batches = training_batches(splits["train"], train.batch_tokens, count, device)
    return device, exp, train, task, splits, module, batches, training_step(module, exp, train, device, compiled)
