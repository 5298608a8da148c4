"""The GPU check's parts (`bench/gpu_check.py`), each run in its own process: `fit` (Lightning's
`Trainer.fit` and test decoding), `train` (one family at one profile: training tokens/s, decoding), `profile`
(torch.profiler of new-shape steps)."""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.gpu_setup import (
    build_module,
    device_named,
    experiment_at,
    load_tokenized,
    peak_mib,
    sync,
    tokens_in,
    top_ops,
    training_setup,
)

FAMILIES = ("gru_bahdanau", "lstm_luong", "transformer")
FIT_EXPERIMENT = "transformer"
DECODE_SENTENCES = 512  # test sources per decoding measurement
CELL_TIMEOUT_S = 60  # one eager training cell, process start included (compiled: 3 times this)


def part_profile(args: argparse.Namespace) -> dict:
    """Where the time goes (`torch.profiler`): training steps on 4 batches twice (shapes new, then seen
    again: a per-shape cost shows as a slow first pass) and beam-5 search of 64 test sentences with the
    weights in the train precision, as the registered model decodes (`decode.precision`)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from seqforge.data.batching import collate
    from seqforge.inference.decoding import beam_search, max_lengths

    device, exp, train, task, splits, module, batches, step = training_setup(args, 4, compiled=False)
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if device.type == "cuda" else [])]
    passes = []
    with profile(activities=activities) as prof:
        for _ in range(2):
            times = []
            for batch in batches:
                start = time.perf_counter()
                step(batch)
                sync(device)
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
        sync(device)
        decode_s = time.perf_counter() - start
    return {
        "experiment": args.experiment,
        "profile": args.profile,
        "precision": train.precision,
        "train_pass_ms": passes,
        "train_top": train_top,
        "decode_s": round(decode_s, 3),
        "decode_top": top_ops(prof, device),
        "device": str(device),
    }


def part_train(args: argparse.Namespace) -> dict:
    """Training tokens/s and peak memory of one (family, profile, compile) cell; `decode` adds search speed."""
    import torch

    device, exp, train, task, splits, module, batches, step = training_setup(args, args.batches, args.compile)
    bf16 = train.precision.startswith("bf16")
    start = time.perf_counter()
    for batch in batches:  # every shape once: what a first epoch pays per new shape (compilation too)
        step(batch)
    sync(device)
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
    sync(device)
    seconds = time.perf_counter() - start
    result = {
        "experiment": args.experiment,
        "profile": args.profile,
        "compile": args.compile,
        "parameters": sum(p.numel() for p in module.parameters()),
        "precision": train.precision,
        "batch_tokens": train.batch_tokens,
        "steps": steps,
        "train_tokens_per_s": round(tokens / seconds),
        "step_ms": round(1000 * seconds / steps, 2),
        "first_pass_ms": round(1000 * first_pass_s / len(batches), 1),
        "peak_mib": round(peak_mib(device), 1),
        "device": str(device),
    }
    if args.decode:
        result.update(
            decode_speed(
                module.model.eval(), splits["test"], task.decode.batch_size, device, bf16, args.decode_sentences
            )
        )
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
    batches = [
        collate([{"src_ids": src_ids[i], "index": i} for i in order[s : s + batch_size]])
        for s in range(0, len(order), batch_size)
    ]
    decoder = NoEOS(model)
    out = {}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    for name, search in (
        ("greedy", lambda s, n, cap: [[h] for h in greedy(decoder, s, n, cap)]),
        ("beam5", lambda s, n, cap: [[h.tokens for h in b] for b in beam_search(decoder, s, n, cap, beam_size=5)]),
    ):
        with autocast:
            first = batches[0]
            search(
                first["src"][:8].to(device),
                first["src_lens"][:8].to(device),
                max_lengths(first["src_lens"][:8], 1.0, 1),
            )  # warm-up
            sync(device)
            start, produced = time.perf_counter(), 0
            for batch in batches:
                src, lens = batch["src"].to(device), batch["src_lens"].to(device)
                hyps = search(src, lens, max_lengths(batch["src_lens"], 1.0, 1))
                produced += sum(len(h[0]) + 1 for h in hyps)
            sync(device)
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
    from seqforge.training.worker.precision import LIGHTNING

    device = device_named(args.device)
    torch.set_float32_matmul_precision("high")
    with tempfile.TemporaryDirectory() as root:
        exp, train, task = experiment_at(args.experiment, args.profile, Path(root), args.precision)
    splits, tokenizer = load_tokenized(args.data)

    class EpochClock(Callback):
        """Seconds of each training epoch (validation apart) and each validation."""

        def __init__(self) -> None:
            self.train_s, self.val_s, self.val_bleu = [], [], []

        def on_train_epoch_start(self, trainer, module) -> None:
            sync(device)
            self.t0 = time.perf_counter()

        def on_validation_epoch_start(self, trainer, module) -> None:
            sync(device)
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
    module = build_module(exp, tokenizer, task)
    data = Seq2SeqDataModule({"train": splits["train"], "validation": splits["validation"]}, train)
    clock = EpochClock()
    metric, mode = task_kind(task.kind).monitor
    with tempfile.TemporaryDirectory() as ckpt_dir:
        best = ModelCheckpoint(ckpt_dir, monitor=metric, mode=mode, save_top_k=1, save_weights_only=True)
        trainer = pl.Trainer(
            accelerator=device.type,
            devices=1,
            precision=LIGHTNING[train.precision],
            max_epochs=train.max_epochs,
            max_time=timedelta(minutes=args.fit_minutes),
            callbacks=[clock, best],
            logger=False,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            log_every_n_steps=train.log_every_n_steps,
        )
        start = time.perf_counter()
        trainer.fit(module, datamodule=data)
        fit_s = time.perf_counter() - start
        weights = torch.load(best.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
    module.load_state_dict(weights)
    test = splits["test"]
    scores = {}
    ct2 = {"ct2_beam5_float16": "float16"} if device.type == "cuda" else {}
    ct2["ct2_beam5_int8"] = "int8"  # CTranslate2's CPU serving, on this machine's cores
    searches = {
        "greedy": {"beam_size": 1},
        "beam5": {"beam_size": 5},
        **{name: {"beam_size": 5, "device": "cpu" if ct2[name] == "int8" else "auto"} for name in ct2},
        "beam5_bf16": {"beam_size": 5, "precision": "bf16"},
    }  # last: it casts the model to bf16
    for name, decode in searches.items():
        cfg = DecodeCfg(**{**task.decode.model_dump(), **decode})
        try:  # one search's failure (no ctranslate2, its CUDA libraries missing) is its row's, not the fit's
            scores[name] = _decode_test(module, tokenizer, exp, task, test, cfg, ct2.get(name))
        except (ImportError, RuntimeError) as err:
            scores[name] = {"error": f"{type(err).__name__}: {err}"}
    return {
        "experiment": args.experiment,
        "profile": args.profile,
        "precision": train.precision,
        "batch_tokens": train.batch_tokens,
        "parameters": sum(p.numel() for p in module.parameters()),
        "max_epochs": train.max_epochs,
        "epochs": len(clock.train_s),
        "updates": trainer.global_step,
        "fit_s": round(fit_s, 1),
        "train_epoch_s": [round(s, 2) for s in clock.train_s],
        "val_s": [round(s, 2) for s in clock.val_s],
        "val_bleu": clock.val_bleu,
        "best_epoch_val_bleu": max(clock.val_bleu, default=None),
        "test": scores,
        "test_sentences": len(test),
        "peak_mib": round(peak_mib(device), 1),
        "device": str(device),
    }


def _decode_test(module, tokenizer, exp, task, test, cfg, quantization: str | None) -> dict:
    """Test BLEU/chrF and decoding speed of `module` under `cfg` (CTranslate2's when `quantization`)."""
    from seqforge.inference.predictor import Predictor
    from seqforge.tasks.registry import task_kind

    predictor = (
        ct2_predictor(module.model, tokenizer, exp, quantization, cfg)
        if quantization
        else Predictor(module.model, tokenizer, {"kind": task.kind}, cfg)
    )
    sync(predictor.device)
    start = time.perf_counter()
    nbest = predictor.generate_ids(test["src_ids"], cfg)
    sync(predictor.device)
    seconds = time.perf_counter() - start
    hyps = tokenizer.decode([h[0] for h in nbest], "target")
    metrics = task_kind(task.kind).scores(hyps, test["target"], task.model_dump())
    return {
        "bleu": metrics["bleu"],
        "chrf": metrics["chrf"],
        "tokens_per_s": round(sum(len(h[0]) + 1 for h in nbest) / seconds),
        "sentences_per_s": round(len(hyps) / seconds, 1),
        "device": str(predictor.device),
        "sample": hyps[0],
    }


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
