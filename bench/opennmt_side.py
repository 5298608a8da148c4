"""OpenNMT-py's side of `bench/peer_opennmt.py`: its own venv, the shared corpus written as subword text, its
configuration at ours, its training runs and its beam decoding, timed."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from rich.console import Console

from seqforge.core import paths

ONMT = "OpenNMT-py==3.5.1"
# What onmt_train / onmt_translate import at start-up (its other requirements serve features not used here).
ONMT_RUNTIME = [
    "configargparse",
    "pyyaml",
    "sacrebleu",
    "six",
    "pyonmttok",
    "spacy",
    "pyahocorasick",
    "rapidfuzz",
    "fasttext",
]
WORK = Path("runs/bench/opennmt")
STEP_REPORT = re.compile(r"Step (\d+)/.*?(\d+)/\s*(\d+) tok/s;\s*(\d+) sec")
SENTENCES = 64  # per update
THREADS = 2
FIXED = 30  # tokens in every output of the same-work decoding


def ensure_peer(venv: Path) -> Path:
    """The side venv with OpenNMT-py, created on first use; returns its bin/ folder."""
    bin_dir = venv / "bin"
    if (bin_dir / "onmt_train").exists():
        return bin_dir
    torch_spec = f"torch=={torch.__version__.split('+')[0]}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, torch_spec], check=True)
    subprocess.run([*pip, "--no-deps", ONMT], check=True)
    subprocess.run([*pip, *ONMT_RUNTIME, torch_spec], check=True)
    return bin_dir


def write_corpus(steps: int | None, root: Path = Path()) -> dict:
    """Text files of subword tokens for OpenNMT-py, a tokenized subset for seqforge (the first `steps` × 64
    training pairs; None: all of them), and their sizes; from the translation task tokenized in checkout `root`."""
    from datasets import DatasetDict, load_from_disk

    from seqforge.data.tokenizer import SubwordTokenizer

    tokenized = root / paths.tokenized_dir("translation")
    if not (tokenized / "dataset_dict.json").is_file():
        sys.exit(f"{tokenized}: not found; run `dvc repro tokenize@translation` (default profile) first")
    data = load_from_disk(str(tokenized))
    tokenizer = SubwordTokenizer.load(root / paths.tokenizer_file("translation"))
    n_train = steps * SENTENCES if steps else len(data["train"])
    if len(data["train"]) < n_train:
        sys.exit(f"{steps} steps need {n_train} training pairs; the tokenized task has {len(data['train'])}")
    subset = DatasetDict(
        {
            "train": data["train"].select(range(n_train)),
            "validation": data["validation"].select(range(SENTENCES)),
            "test": data["test"],
        }
    )
    subset.save_to_disk(str(WORK / "tokenized"))
    for split in ("train", "validation", "test"):
        for column, side in (("src_ids", "source"), ("tgt_ids", "target")):
            rows = subset[split][column]
            lines = [" ".join(tokenizer.tokens(ids, side)) for ids in rows]
            (WORK / f"{split}.{side}").write_text("\n".join(lines) + "\n")
    specials = {"<pad>", "<s>", "</s>", "<unk>", "<sep>"}
    vocab = [tokenizer.tokens([i], "target")[0] for i in range(tokenizer.vocab_size("target"))]
    (WORK / "vocab.txt").write_text("".join(f"{tok}\t1\n" for tok in vocab if tok not in specials))
    train = subset["train"]
    return {
        "train_src": sum(len(r) for r in train["src_ids"]),
        "train_tgt": sum(len(r) + 1 for r in train["tgt_ids"]),
        "train_sents": n_train,
        "test_src": sum(len(r) for r in subset["test"]["src_ids"]),
        "test_sents": len(subset["test"]),
        "test_src_ids": subset["test"]["src_ids"],
        "test_refs": subset["test"]["target"],
        "tokenizer": tokenizer,
        "vocab": vocab,
    }


def onmt_config(steps: int, save_every: int | None = None, valid_every: int | None = None) -> Path:
    """OpenNMT-py's configuration at the peer model: `steps` updates, a checkpoint every `save_every` (default:
    at the end), validation every `valid_every` (default: never within the run)."""
    config = f"""
save_data: {WORK}/onmt
src_vocab: {WORK}/vocab.txt
tgt_vocab: {WORK}/vocab.txt
share_vocab: true
src_words_min_frequency: 0
tgt_words_min_frequency: 0
data:
  corpus_1: {{path_src: {WORK}/train.source, path_tgt: {WORK}/train.target}}
  valid: {{path_src: {WORK}/validation.source, path_tgt: {WORK}/validation.target}}
encoder_type: brnn
decoder_type: rnn
rnn_type: LSTM
layers: 1
enc_hid_size: 512
dec_hid_size: 512
word_vec_size: 256
global_attention: general
input_feed: 1
dropout: [0.3]
optim: adam
learning_rate: 0.001
adam_beta2: 0.999
max_grad_norm: 5
batch_size: {SENTENCES}
batch_type: sents
valid_batch_size: {SENTENCES}
train_steps: {steps}
valid_steps: {valid_every or steps * 10}
save_checkpoint_steps: {save_every or steps}
save_model: {WORK}/onmt_model
report_every: 10
seed: 1
# OpenNMT-py's defaults (bucket_size 262144, num_workers 2) cycle this corpus in two loader processes that
# take the CPU from training: 150-240 target tok/s measured here. These settings give it ~1,100.
bucket_size: 8192
num_workers: 0
"""
    path = WORK / "onmt.yaml"
    path.write_text(config)
    return path


def onmt_env() -> dict:
    return {
        **os.environ,
        "OMP_NUM_THREADS": str(THREADS),
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
        "PYTHONWARNINGS": "ignore",
    }


def run_onmt_train(bin_dir: Path, steps: int) -> tuple[Path, str]:
    """`onmt_train` for `steps` updates on the corpus `write_corpus` wrote: its checkpoint and its log."""
    train = subprocess.run(
        [str(bin_dir / "onmt_train"), "-config", str(onmt_config(steps))],
        capture_output=True,
        text=True,
        env=onmt_env(),
        check=False,
    )
    if train.returncode:
        sys.exit(f"onmt_train failed:\n{train.stderr[-3000:]}")
    return WORK / f"onmt_model_step_{steps}.pt", train.stderr + train.stdout


# `onmt_translate` under torch.profiler, in the peer venv: prints each op's self CPU microseconds as JSON
ONMT_PROFILED = """
import json, sys, torch
from torch.profiler import ProfilerActivity, profile
from onmt.bin.translate import main
sys.argv = ["onmt_translate", *sys.argv[1:]]
with profile(activities=[ProfilerActivity.CPU]) as prof:
    main()
print(json.dumps({e.key: e.self_cpu_time_total for e in prof.key_averages()}))
"""


def onmt_translate(
    bin_dir: Path, checkpoint: Path, out: Path, fixed: int | None = None, profiled: bool = False
) -> float | dict[str, float]:
    """Beam-5 decode the test sources with `checkpoint` into `out` (subword tokens), every output `fixed` tokens
    long when given; its translation seconds, or with `profiled` its self CPU microseconds per op."""
    length = ["-min_length", str(fixed), "-max_length", str(fixed), "-max_length_ratio", "100"] if fixed else []
    options = [
        "-model",
        str(checkpoint),
        "-src",
        str(WORK / "test.source"),
        "-output",
        str(out),
        "-beam_size",
        "5",
        "-batch_size",
        str(SENTENCES),
        "-batch_type",
        "sents",
        "-report_time",
        "-gpu",
        "-1",
        *length,
    ]
    command = [str(bin_dir / "python"), "-c", ONMT_PROFILED] if profiled else [str(bin_dir / "onmt_translate")]
    translate = subprocess.run([*command, *options], capture_output=True, text=True, env=onmt_env(), check=False)
    if translate.returncode:
        sys.exit(f"onmt_translate failed:\n{translate.stderr[-3000:]}")
    if profiled:
        return json.loads(translate.stdout.strip().splitlines()[-1])
    return float(re.search(r"Total translation time \(s\): ([\d.]+)", translate.stderr + translate.stdout)[1])


def run_onmt(bin_dir: Path, steps: int) -> dict:
    """Train with OpenNMT-py's CLI; tokens/s from its own step reports and timing."""
    _, log = run_onmt_train(bin_dir, steps)
    reports = STEP_REPORT.findall(log)
    windows = [(int(s), int(src), int(tgt)) for s, src, tgt, _ in reports if int(s) > 10]  # first window: warm-up
    return {
        "train_src": statistics.mean(w[1] for w in windows),
        "train_tgt": statistics.mean(w[2] for w in windows),
        "wall_s": float(reports[-1][3]),
    }


def onmt_decode(bin_dir: Path, steps: int, sizes: dict, profiled: bool) -> dict:
    """OpenNMT-py's beam-5 decoding of the test sources with its checkpoint after `steps` updates: target tok/s
    with its own length limits, tok/s and ms per decoder step with `FIXED`-token outputs (and with `profiled`,
    a profiled pass of the latter: self CPU per op)."""
    checkpoint = WORK / f"onmt_model_step_{steps}.pt"
    if not checkpoint.is_file():
        sys.exit(f"{checkpoint}: not found; run a training round of {steps} steps first (without --decode-only)")
    seconds = onmt_translate(bin_dir, checkpoint, WORK / "onmt_hyps.txt")
    hyp_tokens = sum(len(line.split()) for line in (WORK / "onmt_hyps.txt").read_text().splitlines())
    fixed_seconds = onmt_translate(bin_dir, checkpoint, WORK / "onmt_fixed.txt", FIXED)
    ops = onmt_translate(bin_dir, checkpoint, WORK / "onmt_fixed.txt", FIXED, profiled=True) if profiled else {}
    return decode_figures(hyp_tokens, seconds, fixed_seconds, sizes) | {"ops": ops}


def decode_figures(hyp_tokens: int, seconds: float, fixed_seconds: float, sizes: dict) -> dict:
    """The decoding columns: target tok/s as trained; tok/s and ms per decoder step (FIXED steps per batch of
    64 sentences) with `FIXED`-token outputs."""
    batches = -(-sizes["test_sents"] // SENTENCES)
    return {
        "tgt_tok_s": hyp_tokens / seconds,
        "fixed_tok_s": FIXED * sizes["test_sents"] / fixed_seconds,
        "step_ms": 1000 * fixed_seconds / (batches * FIXED),
    }


def onmt_for_minutes(bin_dir: Path, minutes: float, every: int) -> tuple[dict[int, float], int]:
    """`onmt_train` on the whole corpus until its elapsed-seconds counter passes `minutes`, a checkpoint every
    `every` updates: the seconds at each reported update, and the last update reached."""
    cmd = [str(bin_dir / "onmt_train"), "-config", str(onmt_config(10**7, save_every=every, valid_every=10**8))]
    seconds_at: dict[int, float] = {}
    with (
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=onmt_env()) as proc,
        (WORK / "onmt_train.log").open("w") as log,
    ):
        for line in proc.stdout:
            log.write(line)
            if report := STEP_REPORT.search(line):
                seconds_at[int(report[1])] = float(report[4])
                if float(report[4]) >= minutes * 60:
                    proc.terminate()
                    break
        proc.wait()
    if not seconds_at:
        sys.exit(f"onmt_train reported no update: see {WORK / 'onmt_train.log'}")
    return seconds_at, max(seconds_at)


def onmt_points(bin_dir: Path, seconds_at: dict[int, float], minutes: float, every: int, sizes: dict) -> list[dict]:
    """Test scores (beam 5) of each checkpoint OpenNMT-py saved within `minutes`."""
    from seqforge.tasks.registry import load_task, task_kind

    task = load_task("translation")
    ids = {token: i for i, token in enumerate(sizes["vocab"])}
    points = []
    for step in sorted(s for s, sec in seconds_at.items() if s % every == 0 and sec <= minutes * 60):
        out = WORK / f"onmt_hyps_{step}.txt"
        onmt_translate(bin_dir, WORK / f"onmt_model_step_{step}.pt", out)
        hyps = sizes["tokenizer"].decode([[ids[t] for t in line.split()] for line in out.read_text().splitlines()])
        scores = task_kind(task.kind).scores(hyps, sizes["test_refs"], task.model_dump())
        points.append(
            {
                "minutes": round(seconds_at[step] / 60, 2),
                "update": step,
                "bleu": scores["bleu"],
                "bleu_lc": scores["bleu_lc"],
                "chrf": scores["chrf"],
                "split": "test",
                "search": "beam 5",
            }
        )
        Console(stderr=True).print(
            f"OpenNMT-py update {step:,} ({points[-1]['minutes']:.1f} min): test BLEU {scores['bleu']:.2f}"
        )
    return points
