"""The GPU check: what one accelerator does with seqforge's models, in minutes (`make gpu-check`).

    python -m bench.gpu_check [--data artifacts/tokenized/translation] [--out reports/gpu_check]
                              [--minutes 7.5] [--fit-minutes 2.5] [--profiles default gpu]

Three parts, each in its own process (its peak memory is its own; a crash or a hung compile loses
only that part), written to `<out>/gpu_check.json` as each finishes and printed as a table:

1. `fit`: a Lightning `Trainer.fit` of the project's own `Seq2SeqModule` and `Seq2SeqDataModule` on
   the tokenized translation task with the last profile's Transformer (the `gpu` profile: d_model 512,
   bf16-mixed, 16k-token batches), for its epochs or `--fit-minutes`, whichever ends first; seconds
   per training epoch, validation BLEU; then test BLEU/chrF with greedy and beam-5 search (fp32 and
   bf16 weights) and with CTranslate2's beam 5 (`seqforge export`'s converter: float16 weights on the
   GPU, if any; int8 on the CPU cores), decoding tokens/s and the device it ran on.
2. `train`: for every model family (conf/experiments/ gru_bahdanau, lstm_luong, transformer) at
   every profile's size, training tokens/s (source + target, padding excluded) and peak memory
   under the profile's precision, eager and `torch.compile`d (compile time apart), on the task's
   real token-budget batches.
3. `decode`: greedy and beam-5 tokens/s of the same models on the test sources (EOS banned, so every
   output runs to its length cap: the cost of search, independent of the few updates the weights saw).

It needs torch, lightning, pyarrow, sacrebleu, tokenizers, rich and the project's pure-Python
dependencies (pydantic, datasets, nltk, sacremoses: `bench/device_wheels.sh` downloads them for a
machine that lacks them), and never ray, mlflow or dvc. On a CPU (`--device cpu`, the test) it runs
the same code at whatever size the profiles give (`--profiles smoke`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

FAMILIES = ("gru_bahdanau", "lstm_luong", "transformer")
FIT_EXPERIMENT = "transformer"
DECODE_SENTENCES = 512  # test sources per decoding measurement
CELL_TIMEOUT_S = 60  # one eager training cell, process start included (compiled: 3 times this)


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
    """(experiment, train settings, task) of `name` under `profile`; `precision` replaces the profile's."""
    from seqforge.config.experiment import load_experiment
    from seqforge.config.shared import load_config
    from seqforge.tasks.registry import load_task

    conf = profile_conf(profile, root)
    exp = load_experiment(name, conf)
    train = exp.train_config(load_config(conf).train)
    if precision:
        train = train.model_copy(update={"precision": precision})
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
def _device(name: str):
    import torch

    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                        ("cpu" if name == "auto" else name))


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mib(device) -> float:
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB; the whole process


def _module(exp, tokenizer, task):
    from seqforge.tasks.registry import task_kind
    from seqforge.training.module import Seq2SeqModule

    vocab = tokenizer.vocab_size("source"), tokenizer.vocab_size("target")
    return Seq2SeqModule(exp.model_dump(mode="json"), *vocab, tokenizer.dumps(), task.kind,
                         task_kind(task.kind).validation_bleu(task))


def training_step(module, exp, train, device, compiled: bool):
    """One AdamW update of `module` on a batch, as the trainer does it: autocast to the train precision,
    label-smoothed loss in fp32, clipped gradients."""
    import torch

    opt = torch.optim.AdamW(module.parameter_groups(), lr=exp.optim.lr, betas=exp.optim.betas)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=train.precision.startswith("bf16"))
    model = torch.compile(module.model, dynamic=True) if compiled else module.model

    def step(batch: dict) -> None:
        with autocast:
            logits = model(batch["src"], batch["src_lens"], batch["tgt_in"])
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), batch["tgt_out"].flatten(), ignore_index=0,
            label_smoothing=exp.optim.label_smoothing)
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
        rows.append({"op": event.key[:60], "calls": event.count, "self_cpu_ms": round(event.self_cpu_time_total / 1e3, 2),
                     "self_gpu_ms": round(gpu_us / 1e3, 2)})
    rows.sort(key=lambda r: (r["self_gpu_ms"], r["self_cpu_ms"]), reverse=True)
    return rows[:count]


def part_profile(args: argparse.Namespace) -> dict:
    """Where the time goes (`torch.profiler`): training steps on 4 batches twice (shapes new, then seen
    again: a per-shape cost shows as a slow first pass) and beam-5 search of 64 test sentences with the
    weights in the train precision, as the registered model decodes (`decode.precision`)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from seqforge.data.batching import collate
    from seqforge.inference.decoding import beam_search, max_lengths

    device = _device(args.device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as root:
        exp, train, task = experiment_at(args.experiment, args.profile, Path(root), args.precision)
    splits, tokenizer = load_tokenized(args.data)
    module = _module(exp, tokenizer, task).to(device).train()
    batches = training_batches(splits["train"], train.batch_tokens, 4, device)
    step = training_step(module, exp, train, device, compiled=False)
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if device.type == "cuda" else [])]
    passes = []
    with profile(activities=activities) as prof:
        for _ in range(2):
            times = []
            for batch in batches:
                start = time.perf_counter()
                step(batch)
                _sync(device)
                times.append(round(1000 * (time.perf_counter() - start), 1))
            passes.append(times)
    train_top = top_ops(prof, device)
    model = module.model.eval().to(torch.bfloat16 if train.precision.startswith("bf16") else torch.float32)
    src_ids = splits["test"].select(range(64))["src_ids"]
    batch = collate([{"src_ids": ids, "index": i} for i, ids in enumerate(src_ids)])
    src, lens = batch["src"].to(device), batch["src_lens"].to(device)
    cap = max_lengths(batch["src_lens"], task.decode.max_len_ratio, task.decode.max_len_offset)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        beam_search(model, src, lens, cap, beam_size=5)
        _sync(device)
        decode_s = time.perf_counter() - start
    return {"experiment": args.experiment, "profile": args.profile, "precision": train.precision,
            "train_pass_ms": passes, "train_top": train_top,
            "decode_s": round(decode_s, 3), "decode_top": top_ops(prof, device), "device": str(device)}


def part_train(args: argparse.Namespace) -> dict:
    """Training tokens/s and peak memory of one (family, profile, compile) cell; `decode` adds search speed."""
    import torch

    device = _device(args.device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as root:
        exp, train, task = experiment_at(args.experiment, args.profile, Path(root), args.precision)
    splits, tokenizer = load_tokenized(args.data)
    module = _module(exp, tokenizer, task).to(device).train()
    batches = training_batches(splits["train"], train.batch_tokens, args.batches, device)
    step = training_step(module, exp, train, device, args.compile)
    bf16 = train.precision.startswith("bf16")
    start = time.perf_counter()
    for batch in batches:  # every shape once: what a first epoch pays per new shape (compilation too)
        step(batch)
    _sync(device)
    first_pass_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    steps = tokens = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds or steps < len(batches):  # shapes seen before, as in later epochs
        batch = batches[steps % len(batches)]
        step(batch)
        tokens += tokens_in(batch)
        steps += 1
    _sync(device)
    seconds = time.perf_counter() - start
    result = {
        "experiment": args.experiment, "profile": args.profile, "compile": args.compile,
        "parameters": sum(p.numel() for p in module.parameters()),
        "precision": train.precision, "batch_tokens": train.batch_tokens,
        "steps": steps, "train_tokens_per_s": round(tokens / seconds),
        "step_ms": round(1000 * seconds / steps, 2),
        "first_pass_ms": round(1000 * first_pass_s / len(batches), 1),
        "peak_mib": round(_peak_mib(device), 1), "device": str(device),
    }
    if args.decode:
        result.update(decode_speed(module.model.eval(), splits["test"], task.decode.batch_size, device,
                                   bf16, args.decode_sentences))
    return result


def decode_speed(model, test_split, batch_size: int, device, bf16: bool, sentences: int) -> dict:
    """Greedy and beam-5 output tokens/s over the first `sentences` test sources (EOS banned: every
    output runs to its cap, source length + 1)."""
    import torch

    from bench.throughput import NoEOS
    from seqforge.data.batching import collate
    from seqforge.inference.decoding import beam_search, greedy, max_lengths

    src_ids = test_split.select(range(min(sentences, len(test_split))))["src_ids"]
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
    batches = [collate([{"src_ids": src_ids[i], "index": i} for i in order[s : s + batch_size]])
               for s in range(0, len(order), batch_size)]
    decoder = NoEOS(model)
    out = {}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    for name, search in (("greedy", lambda s, n, cap: [[h] for h in greedy(decoder, s, n, cap)]),
                         ("beam5", lambda s, n, cap: [[h.tokens for h in b] for b in
                                                      beam_search(decoder, s, n, cap, beam_size=5)])):
        with autocast:
            first = batches[0]
            search(first["src"][:8].to(device), first["src_lens"][:8].to(device),
                   max_lengths(first["src_lens"][:8], 1.0, 1))  # warm-up
            _sync(device)
            start, produced = time.perf_counter(), 0
            for batch in batches:
                src, lens = batch["src"].to(device), batch["src_lens"].to(device)
                hyps = search(src, lens, max_lengths(batch["src_lens"], 1.0, 1))
                produced += sum(len(h[0]) + 1 for h in hyps)
            _sync(device)
        out[f"{name}_tokens_per_s"] = round(produced / (time.perf_counter() - start))
    return {**out, "decode_sentences": len(src_ids), "decode_batch": batch_size}


def part_fit(args: argparse.Namespace) -> dict:
    """`Trainer.fit` of the project's module and data module, then test BLEU with greedy and beam-5 search."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint

    from seqforge.config.shared import DecodeCfg
    from seqforge.data.datasets import Seq2SeqDataModule
    from seqforge.tasks.registry import task_kind

    device = _device(args.device)
    torch.set_float32_matmul_precision("high")
    with tempfile.TemporaryDirectory() as root:
        exp, train, task = experiment_at(args.experiment, args.profile, Path(root), args.precision)
    splits, tokenizer = load_tokenized(args.data)

    class EpochClock(Callback):
        """Seconds of each training epoch (validation apart) and each validation."""

        def __init__(self) -> None:
            self.train_s, self.val_s, self.val_bleu = [], [], []

        def on_train_epoch_start(self, trainer, module) -> None:
            _sync(device)
            self.t0 = time.perf_counter()

        def on_validation_epoch_start(self, trainer, module) -> None:
            _sync(device)
            self.v0 = time.perf_counter()
            if not trainer.sanity_checking:
                self.train_s.append(self.v0 - self.t0)

        def on_validation_end(self, trainer, module) -> None:  # after the module logged its metrics
            if not trainer.sanity_checking:
                self.val_s.append(time.perf_counter() - self.v0)
                self.val_bleu.append(round(float(trainer.callback_metrics.get("val_bleu", float("nan"))), 2))

    pl.seed_everything(train.seed, workers=True, verbose=False)
    if train.max_epochs is None:  # a time or update budget: two epochs (the check times epochs, it plans nothing)
        train = train.model_copy(update={"max_epochs": 2})
    module = _module(exp, tokenizer, task)
    data = Seq2SeqDataModule({"train": splits["train"], "validation": splits["validation"]}, train)
    clock = EpochClock()
    metric, mode = task_kind(task.kind).monitor
    with tempfile.TemporaryDirectory() as ckpt_dir:
        best = ModelCheckpoint(ckpt_dir, monitor=metric, mode=mode, save_top_k=1, save_weights_only=True)
        trainer = pl.Trainer(
            accelerator=device.type, devices=1, precision=train.precision, max_epochs=train.max_epochs,
            max_time=timedelta(minutes=args.fit_minutes), callbacks=[clock, best], logger=False,
            num_sanity_val_steps=0, use_distributed_sampler=False, enable_progress_bar=False,
            enable_model_summary=False, log_every_n_steps=train.log_every_n_steps)
        start = time.perf_counter()
        trainer.fit(module, datamodule=data)
        fit_s = time.perf_counter() - start
        weights = torch.load(best.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
    module.load_state_dict(weights)
    test = splits["test"]
    scores = {}
    ct2 = {"ct2_beam5_float16": "float16"} if device.type == "cuda" else {}
    ct2["ct2_beam5_int8"] = "int8"  # CTranslate2's CPU serving, on this machine's cores
    searches = {"greedy": {"beam_size": 1}, "beam5": {"beam_size": 5},
                **{name: {"beam_size": 5, "device": "cpu" if ct2[name] == "int8" else "auto"} for name in ct2},
                "beam5_bf16": {"beam_size": 5, "precision": "bf16"}}  # last: it casts the model to bf16
    for name, decode in searches.items():
        cfg = DecodeCfg(**{**task.decode.model_dump(), **decode})
        try:  # one search's failure (no ctranslate2, its CUDA libraries missing) is its row's, not the fit's
            scores[name] = _decode_test(module, tokenizer, exp, task, test, cfg, ct2.get(name))
        except (ImportError, RuntimeError) as err:
            scores[name] = {"error": f"{type(err).__name__}: {err}"}
    return {
        "experiment": args.experiment, "profile": args.profile, "precision": train.precision,
        "batch_tokens": train.batch_tokens, "parameters": sum(p.numel() for p in module.parameters()),
        "max_epochs": train.max_epochs, "epochs": len(clock.train_s), "updates": trainer.global_step,
        "fit_s": round(fit_s, 1), "train_epoch_s": [round(s, 2) for s in clock.train_s],
        "val_s": [round(s, 2) for s in clock.val_s], "val_bleu": clock.val_bleu,
        "best_epoch_val_bleu": max(clock.val_bleu, default=None),
        "test": scores, "test_sentences": len(test), "peak_mib": round(_peak_mib(device), 1),
        "device": str(device),
    }


def _decode_test(module, tokenizer, exp, task, test, cfg, quantization: str | None) -> dict:
    """Test BLEU/chrF and decoding speed of `module` under `cfg` (CTranslate2's when `quantization`)."""
    from seqforge.inference.predictor import Predictor
    from seqforge.tasks.registry import task_kind

    predictor = (ct2_predictor(module.model, tokenizer, exp, quantization, cfg) if quantization
                 else Predictor(module.model, tokenizer, {"kind": task.kind}, cfg))
    _sync(predictor.device)
    start = time.perf_counter()
    nbest = predictor.generate_ids(test["src_ids"], cfg)
    _sync(predictor.device)
    seconds = time.perf_counter() - start
    hyps = tokenizer.decode([h[0] for h in nbest], "target")
    metrics = task_kind(task.kind).scores(hyps, test["target"], task.model_dump())
    return {"bleu": metrics["bleu"], "chrf": metrics["chrf"],
            "tokens_per_s": round(sum(len(h[0]) + 1 for h in nbest) / seconds),
            "sentences_per_s": round(len(hyps) / seconds, 1), "device": str(predictor.device), "sample": hyps[0]}


def ct2_predictor(model, tokenizer, exp, quantization: str, cfg):
    """`model` converted to CTranslate2 (`seqforge export`'s converter) with `quantization` weights, as the
    predictor an exported version loads (a GPU when CTranslate2 sees one)."""
    from seqforge.export.ct2 import convert
    from seqforge.inference.ct2_predictor import CT2Predictor

    model_dir = Path(tempfile.mkdtemp(prefix="gpu-check-ct2-"))
    convert(model, exp.model.arch, tokenizer, model_dir, quantization)
    tokenizer.save(model_dir / "tokenizer.json")
    return CT2Predictor.from_dir(model_dir, {"kind": "translation", "experiment": exp.model_dump(mode="json")}, cfg)


PARTS = {"train": part_train, "fit": part_fit, "profile": part_profile}


# -- the driver: parts in child processes, under one deadline --------------------------------------
def environment(device: str) -> dict:
    """What ran the check: versions, the accelerator and its capabilities."""
    import lightning
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "lightning": lightning.__version__,
            "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(), "cpus": os.cpu_count()}
    if torch.cuda.is_available() and device != "cpu":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}", bf16=torch.cuda.is_bf16_supported())
    return info


def run_part(args: argparse.Namespace, part: str, timeout: float, **options) -> dict:
    """One part in a child process; its JSON result, or what went wrong in one line."""
    cmd = [sys.executable, "-m", "bench.gpu_check", "--part", part, "--data", str(args.data),
           "--device", args.device, *(["--precision", args.precision] if args.precision else [])]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", ("on" if value else "off") if isinstance(value, bool) else str(value)]
    if timeout < 5:
        return {**options, "error": "skipped: the check's time budget was spent"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**options, "error": f"did not finish within {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        lines = [line for line in proc.stderr.splitlines() if line.strip()] or ["no output"]
        cause = [line for line in lines if "Error" in line.split(":")[0]] or lines  # the exception's own line
        return {**options, "error": f"exit {proc.returncode}: {cause[-1].strip()[:300]}"}
    return json.loads(lines[-1])


def table(report: dict) -> str:
    """The check as Markdown tables (also printed)."""
    env = report["environment"]
    lines = [f"GPU check — {env.get('gpu', 'CPU')}, torch {env['torch']}, lightning {env['lightning']}, "
             f"{report['wall_s']:.0f} s", ""]
    fit = report.get("fit", {})
    if "error" in fit:
        lines += [f"fit: {fit['error']}", ""]
    elif fit:
        epochs = fit["train_epoch_s"]
        lines += [
            f"Trainer.fit — {fit['experiment']} at profile {fit['profile']} ({fit['parameters'] / 1e6:.1f} M parameters, "
            f"{fit['precision']}, {fit['batch_tokens']} tokens per batch): {fit['epochs']}/{fit['max_epochs']} "
            f"epochs, {fit['updates']} updates in {fit['fit_s']} s; training epoch median "
            f"{sorted(epochs)[len(epochs) // 2] if epochs else float('nan'):.2f} s (first {epochs[0] if epochs else '-'} s), "
            f"best validation BLEU {fit['best_epoch_val_bleu']}", "",
            "| test search | BLEU | chrF | tokens/s | sentences/s | device |", "|---|---|---|---|---|---|",
            *(f"| {name} | {s['error']} | | | | |" if "error" in s else
              f"| {name} | {s['bleu']} | {s['chrf']} | {s['tokens_per_s']:,} | {s['sentences_per_s']} | {s['device']} |"
              for name, s in fit["test"].items()), ""]
    prof = report.get("profile", {})
    if "error" in prof:
        lines += [f"profile: {prof['error']}", ""]
    elif prof:
        lines += [f"torch.profiler — {prof['experiment']} at profile {prof['profile']} ({prof['precision']}): "
                  f"training step ms, 4 new shapes then the same again: {prof['train_pass_ms'][0]} → "
                  f"{prof['train_pass_ms'][1]}; beam-5 of 64 test sentences {prof['decode_s']} s", ""]
        for what in ("train_top", "decode_top"):
            lines += [f"| {what.split('_')[0]}: op | calls | self CPU ms | self GPU ms |", "|---|---|---|---|",
                      *(f"| {r['op']} | {r['calls']} | {r['self_cpu_ms']} | {r['self_gpu_ms']} |" for r in prof[what][:8]),
                      ""]
    lines += ["| experiment | profile | compile | params (M) | precision | batch tokens | train tok/s | step ms "
              "| first-pass step ms | peak MiB | greedy tok/s | beam-5 tok/s |", "|" + "---|" * 12]
    for cell in report.get("train", []):
        if "error" in cell:
            lines.append(f"| {cell['experiment']} | {cell['profile']} | {cell.get('compile', False)} | "
                         f"{cell['error']} |" + " |" * 8)
            continue
        lines.append(
            f"| {cell['experiment']} | {cell['profile']} | {cell['compile']} | {cell['parameters'] / 1e6:.1f} | "
            f"{cell['precision']} | {cell['batch_tokens']} | {cell['train_tokens_per_s']:,} | {cell['step_ms']} | "
            f"{cell['first_pass_ms']} | {cell['peak_mib']:,} | {cell.get('greedy_tokens_per_s', '-')} | "
            f"{cell.get('beam5_tokens_per_s', '-')} |")
    return "\n".join(lines) + "\n"


def drive(args: argparse.Namespace) -> dict:
    """Every part under `args.minutes`; the report, rewritten to `args.out` after each part."""
    if not (args.data / "tokenizer.json").is_file():
        sys.exit(f"gpu-check: {args.data}: no tokenized task here; build it with `seqforge fetch && "
                 f"dvc repro tokenize@translation` (or carry that folder to the GPU machine)")
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    deadline = start + 60 * args.minutes
    report: dict = {"environment": environment(args.device), "train": []}

    def save() -> None:
        report["wall_s"] = round(time.monotonic() - start, 1)
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / "gpu_check.md").write_text(table(report))

    if args.fit_minutes > 0:
        report["fit"] = run_part(args, "fit", min(60 * args.fit_minutes + 150, deadline - time.monotonic()),
                                 experiment=FIT_EXPERIMENT, profile=args.profiles[-1], fit_minutes=args.fit_minutes)
        save()
    report["profile"] = run_part(args, "profile", min(CELL_TIMEOUT_S, deadline - time.monotonic()),
                                 experiment=FIT_EXPERIMENT, profile=args.profiles[-1])
    save()
    cells = [(name, profile, compiled) for compiled in args.compile for profile in args.profiles
             for name in args.experiments]
    for name, profile, compiled in cells:
        report["train"].append(run_part(
            args, "train", min(CELL_TIMEOUT_S * (3 if compiled else 1), deadline - time.monotonic()),
            experiment=name, profile=profile, compile=compiled, decode=not compiled,
            seconds=args.seconds, batches=args.batches, decode_sentences=args.decode_sentences))
        save()
    print(table(report))
    return report


def switch(value: str) -> bool:
    """`on` / `off` on the command line."""
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {value!r}")
    return value == "on"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("artifacts/tokenized/translation"))
    parser.add_argument("--out", type=Path, default=Path("reports/gpu_check"))
    parser.add_argument("--device", default="auto", help="auto | cuda | cpu")
    parser.add_argument("--minutes", type=float, default=7.5, help="the whole check's budget")
    parser.add_argument("--fit-minutes", type=float, default=2.5, help="Trainer.fit's time cap (0: no fit)")
    parser.add_argument("--profiles", nargs="+", default=["default", "gpu"], help="model sizes; the last one fits")
    parser.add_argument("--experiments", nargs="+", default=list(FAMILIES), help="one per model family")
    parser.add_argument("--compile", nargs="+", type=switch, default=[False, True],
                        help="torch.compile: off, on, or both (default)")
    parser.add_argument("--precision", choices=["32-true", "bf16-mixed", "16-mixed"],
                        help="instead of each profile's (a CPU test of the GPU profile's bf16-mixed path)")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed training per cell")
    parser.add_argument("--batches", type=int, default=12,
                        help="distinct batches per cell: one untimed pass (compilation happens here), then timed passes")
    parser.add_argument("--decode-sentences", type=int, default=DECODE_SENTENCES)
    # one part, in a child process of the driver
    parser.add_argument("--part", choices=sorted(PARTS))
    parser.add_argument("--experiment")
    parser.add_argument("--profile")
    parser.add_argument("--decode", type=switch, default=False)
    args = parser.parse_args()
    if args.part:
        args.compile = args.compile[0]
        print(json.dumps(PARTS[args.part](args)))
        return
    drive(args)


if __name__ == "__main__":
    main()
