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
import subprocess
import sys
import time
from pathlib import Path

from bench.gpu_parts import CELL_TIMEOUT_S, DECODE_SENTENCES, FAMILIES, FIT_EXPERIMENT, PARTS


# -- the driver: parts in child processes, under one deadline --------------------------------------
def environment(device: str) -> dict:
    """What ran the check: versions, the accelerator and its capabilities."""
    import lightning
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cpus": os.cpu_count(),
    }
    if torch.cuda.is_available() and device != "cpu":
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            bf16=torch.cuda.is_bf16_supported(),
        )
    return info


def run_part(args: argparse.Namespace, part: str, timeout: float, **options) -> dict:
    """One part in a child process; its JSON result, or what went wrong in one line."""
    cmd = [
        sys.executable,
        "-m",
        "bench.gpu_check",
        "--part",
        part,
        "--data",
        str(args.data),
        "--device",
        args.device,
        *(["--precision", args.precision] if args.precision else []),
    ]
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
    took = f", {report['wall_s']:.0f} s" if "wall_s" in report else ""  # the first check's runs did not time it
    lines = [f"GPU check — {env.get('gpu', 'CPU')}, torch {env['torch']}, lightning {env['lightning']}{took}", ""]
    fit = report.get("fit", {})
    if "error" in fit:
        lines += [f"fit: {fit['error']}", ""]
    elif fit:
        epochs = fit["train_epoch_s"]
        lines += [
            f"Trainer.fit — {fit['experiment']} at profile {fit['profile']} ({fit['parameters'] / 1e6:.1f} M "
            f"parameters, {fit['precision']}, {fit['batch_tokens']} tokens per batch): "
            f"{fit['epochs']}/{fit['max_epochs']} epochs, {fit['updates']} updates in {fit['fit_s']} s; "
            f"training epoch median "
            f"{sorted(epochs)[len(epochs) // 2] if epochs else float('nan'):.2f} s (first "
            f"{epochs[0] if epochs else '-'} s), best validation BLEU {fit['best_epoch_val_bleu']}",
            "",
            "| test search | BLEU | chrF | tokens/s | sentences/s | device |",
            "|---|---|---|---|---|---|",
            *(
                f"| {name} | {s['error']} | | | | |"
                if "error" in s
                else f"| {name} | {s['bleu']} | {s['chrf']} | {s['tokens_per_s']:,} | {s['sentences_per_s']} | "
                f"{s['device']} |"
                for name, s in fit["test"].items()
            ),
            "",
        ]
    prof = report.get("profile", {})
    if "error" in prof:
        lines += [f"profile: {prof['error']}", ""]
    elif prof:
        lines += [
            f"torch.profiler — {prof['experiment']} at profile {prof['profile']} ({prof['precision']}): "
            f"training step ms, 4 new shapes then the same again: {prof['train_pass_ms'][0]} → "
            f"{prof['train_pass_ms'][1]}; beam-5 of 64 test sentences {prof['decode_s']} s",
            "",
        ]
        for what in ("train_top", "decode_top"):
            lines += [
                f"| {what.split('_')[0]}: op | calls | self CPU ms | self GPU ms |",
                "|---|---|---|---|",
                *(f"| {r['op']} | {r['calls']} | {r['self_cpu_ms']} | {r['self_gpu_ms']} |" for r in prof[what][:8]),
                "",
            ]
    lines += [
        "| experiment | profile | compile | params (M) | precision | batch tokens | train tok/s | step ms "
        "| first-pass step ms | peak MiB | greedy tok/s | beam-5 tok/s |",
        "|" + "---|" * 12,
    ]
    for cell in report.get("train", []):
        if "error" in cell:
            lines.append(
                f"| {cell['experiment']} | {cell['profile']} | {cell.get('compile', False)} | "
                f"{cell['error']} |" + " |" * 8
            )
            continue
        lines.append(
            f"| {cell['experiment']} | {cell['profile']} | {cell['compile']} | {cell['parameters'] / 1e6:.1f} | "
            f"{cell['precision']} | {cell['batch_tokens']} | {cell['train_tokens_per_s']:,} | "
            f"{cell.get('step_ms', '-')} | {cell.get('first_pass_ms', '-')} | {cell.get('peak_mib', '-')} | "
            f"{cell.get('greedy_tokens_per_s', '-')} | {cell.get('beam5_tokens_per_s', '-')} |"
        )
    return "\n".join(lines) + "\n"


def drive(args: argparse.Namespace) -> dict:
    """Every part under `args.minutes`; the report, rewritten to `args.out` after each part."""
    if not (args.data / "tokenizer.json").is_file():
        sys.exit(
            f"gpu-check: {args.data}: no tokenized task here; build it with `seqforge fetch && "
            f"dvc repro tokenize@translation` (or carry that folder to the GPU machine)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    deadline = start + 60 * args.minutes
    report: dict = {"environment": environment(args.device), "train": []}

    def save() -> None:
        report["wall_s"] = round(time.monotonic() - start, 1)
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / "gpu_check.md").write_text(table(report))

    if args.fit_minutes > 0:
        report["fit"] = run_part(
            args,
            "fit",
            min(60 * args.fit_minutes + 150, deadline - time.monotonic()),
            experiment=FIT_EXPERIMENT,
            profile=args.profiles[-1],
            fit_minutes=args.fit_minutes,
        )
        save()
    report["profile"] = run_part(
        args,
        "profile",
        min(CELL_TIMEOUT_S, deadline - time.monotonic()),
        experiment=FIT_EXPERIMENT,
        profile=args.profiles[-1],
    )
    save()
    cells = [
        (name, profile, compiled) for compiled in args.compile for profile in args.profiles for name in args.experiments
    ]
    for name, profile, compiled in cells:
        report["train"].append(
            run_part(
                args,
                "train",
                min(CELL_TIMEOUT_S * (3 if compiled else 1), deadline - time.monotonic()),
                experiment=name,
                profile=profile,
                compile=compiled,
                decode=not compiled,
                seconds=args.seconds,
                batches=args.batches,
                decode_sentences=args.decode_sentences,
            )
        )
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
    parser.add_argument(
        "--compile", nargs="+", type=switch, default=[False, True], help="torch.compile: off, on, or both (default)"
    )
    parser.add_argument(
        "--precision",
        choices=["32-true", "bf16-mixed", "16-mixed"],
        help="instead of each profile's (a CPU test of the GPU profile's bf16-mixed path)",
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="timed training per cell")
    parser.add_argument(
        "--batches",
        type=int,
        default=12,
        help="distinct batches per cell: one untimed pass (compilation happens here), then timed passes",
    )
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
