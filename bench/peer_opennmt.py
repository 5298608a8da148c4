"""seqforge and OpenNMT-py 3.5.1 side by side: training and beam-5 decoding tokens/s, same data, same model;
or time to BLEU, each toolkit's recipe for the same minutes.

    python -m bench.peer_opennmt [--steps 200] [--rounds 2] [--workers 2] [--decode-only]
    SEQFORGE_DATA_MIRROR=../shared/data python -m bench.peer_opennmt --minutes 16 [--ours-at 6 --ours-at 16]

Needs the translation task tokenized on the default profile (`dvc repro tokenize@translation`).
OpenNMT-py goes into its own venv (runs/bench/opennmt-venv), never into the project's: its pin
`torch<2.3` would replace our torch, so it is installed with `--no-deps`, next to our torch version
and the few modules its command-line tools import.

Both toolkits read the same subword tokens (our Multi30k en→de BPE, written out as text for OpenNMT-py)
and train the same model: 1-layer bidirectional LSTM encoder (256 per direction), 1-layer LSTM
decoder of 512, Luong general attention with input feeding, embeddings 256, untied, dropout 0.3,
Adam (lr 1e-3), gradient norm clipped at 5, about 64 sentences per update, on the first
steps × 64 training pairs (one pass). seqforge trains as the pipeline does (Ray Train, 2 workers ×
1 CPU, token-budget batches sized to 64 sentences per update); OpenNMT-py as its CLI does (one
process, 2 threads, 64-sentence batches; loader settings that keep its data workers off the two
cores, see `onmt_config`). Rounds alternate which toolkit goes first. Tokens/s: source subwords
and target subwords (with EOS in training, as OpenNMT-py counts them) per second of training steps
(OpenNMT-py: its step reports after the first; seqforge: the epoch's training time); model loading and
process start are excluded. The wall-time columns divide the same corpus tokens by each
toolkit's seconds for the same updates (OpenNMT-py: its elapsed seconds at the last step, warm-up window
included; seqforge: the epoch's training seconds), so neither toolkit's token counting convention enters.

Decoding: each toolkit's model beam-decodes test_2016_flickr (beam 5, no length penalty, batches of 64
sentences, 2 threads; seqforge in float32 and in bfloat16, `decode.precision: bf16`) twice: with its own
length limits (the two models write different lengths: target tok/s) and with every output exactly
`FIXED` tokens long (EOS banned before, every hypothesis ends there), the same work for both whatever
their weights (tokens/s and ms per decoder step). OpenNMT-py's `-precision int8` is not a row: 3.5.1
compares the option's string with `torch.int8` and decodes in float32 (the same output, the same time).
`--decode-only` decodes the checkpoints the last training round left (`onmt_model_step_<steps>.pt`, the
newest Ray checkpoint under runs/bench/opennmt/ray); `--profile` adds one profiled pass of each fixed-length
decoding (torch.profiler, OpenNMT-py's in its own venv) and a table of the ops taking the most self CPU time.
The tables' figures go to reports/peer/speed-<steps>.json.

`--minutes M` (time to BLEU): on full Multi30k en→de with the same BPE, OpenNMT-py trains its recipe at the
configuration above (64-sentence batches, Adam 1e-3 constant, dropout 0.3, no validation) until its own
elapsed-seconds counter passes M minutes, saving a checkpoint every `--every` updates; each checkpoint
is beam-5 decoded on test_2016_flickr afterwards (the BLEU-vs-minutes points). seqforge trains its default
`gru_bahdanau` through the real stages (`dvc repro evaluate@…`, in a scratch copy of this checkout under
runs/bench/opennmt/repo, `train.budget` = each `--ours-at` minutes, default M): test BLEU is its evaluate
stage's (beam 5, GNMT length penalty), its points along the way the validation BLEU (greedy) of each
evaluation with the elapsed time the stage printed (counted from the training's start, Ray workers'
start-up included; OpenNMT-py's from its first update). Both outputs are scored by the task's own metric
(sacreBLEU on detokenized text against the same references, cased and lowercased, chrF). The table and
the points go to reports/peer/time_to_bleu-<M>m.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from seqforge import paths

ONMT = "OpenNMT-py==3.5.1"
# What onmt_train / onmt_translate import at start-up (its other requirements serve features not used here).
ONMT_RUNTIME = ["configargparse", "pyyaml", "sacrebleu", "six", "pyonmttok", "spacy", "pyahocorasick",
                "rapidfuzz", "fasttext"]
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
    subset = DatasetDict({"train": data["train"].select(range(n_train)),
                          "validation": data["validation"].select(range(SENTENCES)), "test": data["test"]})
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
    return {"train_src": sum(len(r) for r in train["src_ids"]), "train_tgt": sum(len(r) + 1 for r in train["tgt_ids"]),
            "train_sents": n_train, "test_src": sum(len(r) for r in subset["test"]["src_ids"]), "test_sents": len(subset["test"]),
            "test_src_ids": subset["test"]["src_ids"], "test_refs": subset["test"]["target"], "tokenizer": tokenizer,
            "vocab": vocab}


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
    return {**os.environ, "OMP_NUM_THREADS": str(THREADS), "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
            "PYTHONWARNINGS": "ignore"}


def run_onmt_train(bin_dir: Path, steps: int) -> tuple[Path, str]:
    """`onmt_train` for `steps` updates on the corpus `write_corpus` wrote: its checkpoint and its log."""
    train = subprocess.run([str(bin_dir / "onmt_train"), "-config", str(onmt_config(steps))],
                           capture_output=True, text=True, env=onmt_env(), check=False)
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


def onmt_translate(bin_dir: Path, checkpoint: Path, out: Path, fixed: int | None = None,
                   profiled: bool = False) -> float | dict[str, float]:
    """Beam-5 decode the test sources with `checkpoint` into `out` (subword tokens), every output `fixed` tokens
    long when given; its translation seconds, or with `profiled` its self CPU microseconds per op."""
    length = ["-min_length", str(fixed), "-max_length", str(fixed), "-max_length_ratio", "100"] if fixed else []
    options = ["-model", str(checkpoint), "-src", str(WORK / "test.source"), "-output", str(out), "-beam_size", "5",
               "-batch_size", str(SENTENCES), "-batch_type", "sents", "-report_time", "-gpu", "-1", *length]
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
    return {"train_src": statistics.mean(w[1] for w in windows), "train_tgt": statistics.mean(w[2] for w in windows),
            "wall_s": float(reports[-1][3])}


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
    return {"tgt_tok_s": hyp_tokens / seconds, "fixed_tok_s": FIXED * sizes["test_sents"] / fixed_seconds,
            "step_ms": 1000 * fixed_seconds / (batches * FIXED)}


def batch_tokens_for(sentences_per_worker: float) -> int:
    """The per-worker token budget whose batches hold `sentences_per_worker` sentences on average."""
    from datasets import load_from_disk

    from seqforge.data.batching import TokenBudgetBatchSampler
    from seqforge.data.datasets import TokenizedSplit

    lengths = TokenizedSplit(load_from_disk(str(WORK / "tokenized"))["train"]).lengths
    low, high = 64, 20_000
    while high - low > 8:
        mid = (low + high) // 2
        batches = list(TokenBudgetBatchSampler(lengths, mid, shuffle=True, seed=0))
        low, high = (mid, high) if len(lengths) / len(batches) < sentences_per_worker else (low, mid)
    return high


def peer_experiment():
    """seqforge's experiment at OpenNMT-py's configuration (`onmt_config`)."""
    from seqforge.config.experiment import experiment_schema

    return experiment_schema().model_validate({
        "name": "peer_lstm", "task": "translation",
        "model": {"arch": "rnn", "cell": "lstm", "emb_dim": 256, "hidden_dim": 512, "enc_hidden_dim": 256,
                  "bidirectional": True, "attention": "luong_general", "input_feeding": True, "dropout": 0.3,
                  "tied_embeddings": False, "shared_embeddings": False},
        "optim": {"lr": 1e-3, "betas": [0.9, 0.999], "schedule": "plateau", "warmup_steps": 0,
                  "label_smoothing": 0.0, "clip_norm": 5.0}})


def run_seqforge(sizes: dict, budget: int, workers: int) -> dict:
    """Train as the pipeline does (Ray Train, `workers` × 2 / `workers` CPUs, one epoch)."""
    import mlflow
    import ray

    from seqforge.config.shared import TrainCfg
    from seqforge.data.shipping import ship
    from seqforge.training.driver import connect_ray, fit_on_ray

    tokenizer = sizes["tokenizer"]
    exp = peer_experiment()
    train_cfg = TrainCfg(num_workers=workers, cpus_per_worker=THREADS // workers, max_epochs=1, batch_tokens=budget,
                         storage_path=str((WORK / "ray").resolve()), num_checkpoints=1)
    mlflow.set_tracking_uri(f"sqlite:///{(WORK / 'mlflow.db').resolve()}")
    connect_ray()
    with mlflow.start_run() as run:
        config = {"kind": "translation", "bleu_tokenize": None, "experiment": exp.model_dump(mode="json"),
                  "train": train_cfg.model_dump(mode="json"), "src_vocab": tokenizer.vocab_size("source"),
                  "tgt_vocab": tokenizer.vocab_size("target"), "data": ship(WORK / "tokenized"), "tokenizer": tokenizer.dumps(),
                  "run_id": run.info.run_id, "tracking_uri": mlflow.get_tracking_uri()}
        result = fit_on_ray(config, train_cfg, f"peer-{time.time_ns()}", ("val_loss", "min"), progress=False)
    ray.shutdown()
    if result.error is not None:
        raise RuntimeError("seqforge training failed") from result.error
    tokens_per_s = mlflow.MlflowClient().get_metric_history(run.info.run_id, "tokens_per_s")[-1].value
    seconds = (sizes["train_src"] + sizes["train_sents"] + sizes["train_tgt"]) / tokens_per_s  # it counts source EOS
    return {"train_src": sizes["train_src"] / seconds, "train_tgt": sizes["train_tgt"] / seconds, "wall_s": seconds}


def seqforge_decode(sizes: dict, precision: str, profiled: bool) -> dict:
    """seqforge's beam-5 decoding of the test sources (in this process, `precision` "32" or "bf16") with the
    newest checkpoint of a training round: as `onmt_decode`."""
    from torch.profiler import ProfilerActivity, profile

    from seqforge.config.shared import DecodeCfg
    from seqforge.inference.predictor import Predictor
    from seqforge.models.registry import build_model
    from seqforge.training.averaging import load_weights

    checkpoints = list((WORK / "ray").glob("peer-*/checkpoint_*/"))
    if not checkpoints:
        sys.exit(f"{WORK / 'ray'}: no seqforge checkpoint to decode; run a training round first (without --decode-only)")
    checkpoint = max(checkpoints, key=lambda path: path.stat().st_mtime)
    weights, _ = load_weights(checkpoint)
    model = build_model(peer_experiment().model, sizes["tokenizer"].vocab_size("source"),
                        sizes["tokenizer"].vocab_size("target"))
    model.load_state_dict(weights)
    torch.set_num_threads(THREADS)
    cfg = DecodeCfg(beam_size=5, batch_size=SENTENCES, length_penalty=0.0, device="cpu", precision=precision)
    predictor = Predictor(model, sizes["tokenizer"], {}, cfg)
    predictor.generate_ids(sizes["test_src_ids"][:SENTENCES])  # warm-up: first calls allocate
    timed = []
    for decode in (cfg, cfg.model_copy(update={"min_length": FIXED, "max_len_ratio": 0, "max_len_offset": FIXED + 1})):
        start = time.perf_counter()
        hyps = predictor.generate_ids(sizes["test_src_ids"], decode)
        timed.append((time.perf_counter() - start, sum(len(h[0]) for h in hyps)))
    (seconds, tokens), (fixed_seconds, fixed_tokens) = timed
    assert fixed_tokens == FIXED * sizes["test_sents"], fixed_tokens
    ops = {}
    if profiled:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            predictor.generate_ids(sizes["test_src_ids"], decode)
        ops = {event.key: event.self_cpu_time_total for event in prof.key_averages()}
    return decode_figures(tokens, seconds, fixed_seconds, sizes) | {"ops": ops}


def onmt_for_minutes(bin_dir: Path, minutes: float, every: int) -> tuple[dict[int, float], int]:
    """`onmt_train` on the whole corpus until its elapsed-seconds counter passes `minutes`, a checkpoint every
    `every` updates: the seconds at each reported update, and the last update reached."""
    cmd = [str(bin_dir / "onmt_train"), "-config", str(onmt_config(10**7, save_every=every, valid_every=10**8))]
    seconds_at: dict[int, float] = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=onmt_env()) as proc, \
            (WORK / "onmt_train.log").open("w") as log:
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
        points.append({"minutes": round(seconds_at[step] / 60, 2), "update": step, "bleu": scores["bleu"],
                       "bleu_lc": scores["bleu_lc"], "chrf": scores["chrf"], "split": "test", "search": "beam 5"})
        Console(stderr=True).print(f"OpenNMT-py update {step:,} ({points[-1]['minutes']:.1f} min): "
                                   f"test BLEU {scores['bleu']:.2f}")
    return points


EVALUATION_LINE = re.compile(r"evaluation \d+/\d+, update ([\d,]+)/.*val BLEU ([\d.]+).*elapsed (\d+:\d\d:\d\d)")


def minutes_of(elapsed: str) -> float:
    """`H:MM:SS` -> minutes."""
    h, m, s = (int(part) for part in elapsed.split(":"))
    return round(h * 60 + m + s / 60, 2)


def scratch_checkout() -> tuple[Path, Path]:
    """A scratch copy of this checkout (`bench.recipes.scratch_repo`) with the translation task tokenized on
    the default profile, and the log its commands write."""
    from bench.recipes import run, scratch_repo

    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    repo, log = scratch_repo((WORK / "repo").resolve()), (WORK / "seqforge.log").resolve()
    run(["dvc", "repro", "tokenize@translation"], repo, log)
    return repo, log


def seqforge_for_minutes(repo: Path, log: Path, minutes: list[float]) -> list[dict]:
    """seqforge's default `gru_bahdanau` with `train.budget` = each of `minutes`, through the real stages in
    `repo`: one result per budget (`bench.recipes.result`) with its validation points."""
    import yaml

    from bench.recipes import result, run

    template = yaml.safe_load((repo / "conf" / "experiments" / "gru_bahdanau.yaml").read_text())
    names = []
    for m in minutes:
        names.append(f"gru_bahdanau_{m:g}m".replace(".", "_"))
        budget = {"train": {**template.get("train", {}), "budget": f"{round(m * 60)}s"}}
        (repo / "conf" / "experiments" / f"{names[-1]}.yaml").write_text(yaml.safe_dump(template | budget, sort_keys=False))
    run(["seqforge", "sync"], repo, log)
    rows = []
    for m, name in zip(minutes, names, strict=True):
        run(["dvc", "repro", f"evaluate@{name}"], repo, log)
        lines = [line for line in log.read_text().splitlines() if line.startswith(f"{name} evaluation ")]
        first = max(i for i, line in enumerate(lines) if " evaluation 1/" in line)  # the last run's lines
        points = [{"minutes": minutes_of(elapsed), "update": int(update.replace(",", "")), "bleu": float(bleu),
                   "split": "validation", "search": "greedy"}
                  for update, bleu, elapsed in (EVALUATION_LINE.search(line).groups() for line in lines[first:])]
        row = result(repo, name, log)
        rows.append({**row, "budget_minutes": m, "trained_minutes": minutes_of(row["trained_for"]), "points": points})
    return rows


def time_to_bleu(args: argparse.Namespace, bin_dir: Path) -> None:
    """OpenNMT-py's recipe and seqforge's default GRU for the same minutes each; test BLEU and the points."""
    repo, log = scratch_checkout()
    sizes = write_corpus(None, repo)
    Console(stderr=True).print(f"OpenNMT-py for {args.minutes:g} minutes …")
    seconds_at, last = onmt_for_minutes(bin_dir, args.minutes, args.every)
    onmt = onmt_points(bin_dir, seconds_at, args.minutes, args.every, sizes)
    Console(stderr=True).print(f"seqforge gru_bahdanau for {', '.join(f'{m:g}' for m in args.ours_at)} minutes …")
    ours = seqforge_for_minutes(repo, log, args.ours_at)

    table = Table(title=f"Time to BLEU: Multi30k en→de, same BPE, test_2016_flickr ({len(sizes['test_refs']):,} "
                        "sentences), beam 5, sacreBLEU on detokenized text, 2 CPU threads")
    for column in ("toolkit", "model", "budget", "trained", "updates", "test BLEU", "lc BLEU", "chrF"):
        table.add_column(column, justify="left" if column in ("toolkit", "model") else "right")
    final = onmt[-1]
    table.add_row("OpenNMT-py 3.5.1", "peer_lstm (recipe)", f"{args.minutes:g} min", f"{final['minutes']:.1f} min",
                  f"{final['update']:,}", f"{final['bleu']:.2f}", f"{final['bleu_lc']:.2f}", f"{final['chrf']:.2f}")
    for row in ours:
        table.add_row("seqforge", "gru_bahdanau (default)", f"{row['budget_minutes']:g} min",
                      f"{row['trained_minutes']:.1f} min",
                      f"{row['updates']:,}", f"{row['test_bleu']:.2f}", f"{row['test_bleu_lc']:.2f}",
                      f"{row['test_chrf']:.2f}")
    points = Table(title="BLEU along the way (OpenNMT-py: each saved checkpoint on test, beam 5; seqforge: each "
                         "evaluation on validation, greedy)")
    for column in ("toolkit", "minutes", "update", "BLEU", "split, search"):
        points.add_column(column, justify="left" if column in ("toolkit", "split, search") else "right")
    for name, rows in (("OpenNMT-py 3.5.1", onmt), *((f"seqforge {r['budget_minutes']:g} min", r["points"]) for r in ours)):
        for point in rows:
            points.add_row(name, f"{point['minutes']:.1f}", f"{point['update']:,}", f"{point['bleu']:.2f}",
                           f"{point['split']}, {point['search']}")
    console = Console(width=140)
    console.print(table)
    console.print(points)
    out = Path("reports/peer") / f"time_to_bleu-{args.minutes:g}m.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"minutes": args.minutes, "torch": torch.__version__, "cpus": os.cpu_count(),
                               "opennmt": {"last_update": last, "points": onmt}, "seqforge": ours}, indent=2) + "\n")
    console.print(f"written: {out}")


def speed(args: argparse.Namespace, bin_dir: Path) -> None:
    """Training (unless `args.decode_only`) and beam-5 decoding tokens/s of both toolkits at the peer
    configuration, `args.rounds` A/B rounds."""
    sizes = write_corpus(args.steps)
    budget = batch_tokens_for(SENTENCES / args.workers)  # 64 sentences per update over the workers
    toolkits = {"OpenNMT-py 3.5.1": (lambda: run_onmt(bin_dir, args.steps), {
                    "float32": lambda: onmt_decode(bin_dir, args.steps, sizes, args.profile)}),
                "seqforge": (lambda: run_seqforge(sizes, budget, args.workers), {
                    "float32": lambda: seqforge_decode(sizes, "32", args.profile),
                    "bfloat16": lambda: seqforge_decode(sizes, "bf16", args.profile)})}
    trained: dict[str, list[dict]] = {name: [] for name in toolkits}
    decoded: dict[tuple[str, str], list[dict]] = {(name, p): [] for name, (_, ds) in toolkits.items() for p in ds}
    for r in range(args.rounds):
        for name in (list(toolkits) if r % 2 == 0 else list(toolkits)[::-1]):
            train, decoders = toolkits[name]
            Console(stderr=True).print(f"round {r + 1}: {name} …")
            if not args.decode_only:
                trained[name].append(train())
            for precision, decode in decoders.items():
                decoded[name, precision].append(decode())
    console = Console(width=160)
    if not args.decode_only:
        console.print(training_table(trained, sizes, args))
    console.print(decoding_table(decoded, sizes))
    if args.profile:
        console.print(profile_table({key: runs[-1]["ops"] for key, runs in decoded.items()}))
    out = Path("reports/peer") / f"speed-{args.steps}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"steps": args.steps, "torch": torch.__version__, "cpus": os.cpu_count(),
                               "fixed_tokens": FIXED, "training": trained,
                               "decoding": {f"{name}, {precision}": runs for (name, precision), runs in decoded.items()}},
                              indent=2) + "\n")
    console.print(f"written: {out}")


def profile_table(ops: dict[tuple[str, str], dict[str, float]], top: int = 12) -> Table:
    """The ops that take the most self CPU time in each toolkit's profiled `FIXED`-token decoding: ms and share."""
    table = Table(title=f"Where beam-5 decoding spends its time ({FIXED}-token outputs, torch.profiler, self CPU)")
    table.add_column("op")
    for name, precision in ops:
        table.add_column(f"{name}, {precision}", justify="right")
    totals = {key: sum(per_op.values()) for key, per_op in ops.items()}
    names = sorted({op for per_op in ops.values() for op in per_op},
                   key=lambda op: -max(per_op.get(op, 0.0) / totals[key] for key, per_op in ops.items()))
    for op in names[:top]:
        table.add_row(op, *(f"{per_op.get(op, 0.0) / 1000:,.0f} ms ({per_op.get(op, 0.0) / totals[key]:.0%})"
                            for key, per_op in ops.items()))
    table.add_row("total", *(f"{totals[key] / 1000:,.0f} ms" for key in ops), style="bold")
    return table


def training_table(trained: dict[str, list[dict]], sizes: dict, args: argparse.Namespace) -> Table:
    """Training tokens/s per toolkit and round, means and seqforge's ratio."""
    columns = ("train_src", "train_tgt", "wall_s", "wall_tgt")
    for run in (r for rs in trained.values() for r in rs):
        run["wall_tgt"] = sizes["train_tgt"] / run["wall_s"]
    table = Table(title=f"Training: Multi30k en→de, LSTM + Luong general + input feeding, {args.steps} steps × "
                        f"{SENTENCES} sentences, 2 CPU threads (seqforge: {args.workers} Ray Train worker(s))")
    for col in ("toolkit", "run", "train src tok/s", "train tgt tok/s", f"wall s, {args.steps} updates",
                "tgt tok/s by wall"):
        table.add_column(col, justify="left" if col in ("toolkit", "run") else "right")
    means = {name: {c: statistics.mean(run[c] for run in rs) for c in columns} for name, rs in trained.items()}
    for name, rs in trained.items():
        for i, run in enumerate(rs, 1):
            table.add_row(name, str(i), *(f"{run[c]:,.0f}" for c in columns))
        table.add_row(name, "mean", *(f"{means[name][c]:,.0f}" for c in columns), style="bold")
    ours, peer = means["seqforge"], means["OpenNMT-py 3.5.1"]
    table.add_row("seqforge ÷ OpenNMT-py", "", *(f"{ours[c] / peer[c]:.2f}×" for c in columns), style="bold")
    return table


def decoding_table(decoded: dict[tuple[str, str], list[dict]], sizes: dict) -> Table:
    """Beam-5 decoding per toolkit, precision and round, means, and each mean's ratio to OpenNMT-py's."""
    table = Table(title=f"Beam-5 decoding of {sizes['test_sents']:,} test sentences, batches of {SENTENCES}, "
                        f"{THREADS} CPU threads: each model's own lengths, and every output {FIXED} tokens (same work)")
    for col in ("toolkit", "precision", "run", "tgt tok/s", f"{FIXED}-token tok/s", "ms per step",
                f"{FIXED}-token ÷ OpenNMT-py"):
        table.add_column(col, justify="left" if col in ("toolkit", "precision", "run") else "right")
    peer = statistics.mean(run["fixed_tok_s"] for run in decoded["OpenNMT-py 3.5.1", "float32"])
    for (name, precision), runs in decoded.items():
        rows = [(str(i), run) for i, run in enumerate(runs, 1)]
        rows.append(("mean", {c: statistics.mean(run[c] for run in runs) for c in ("tgt_tok_s", "fixed_tok_s", "step_ms")}))
        for label, run in rows:
            table.add_row(name, precision, label, f"{run['tgt_tok_s']:,.0f}", f"{run['fixed_tok_s']:,.0f}",
                          f"{run['step_ms']:.1f}", f"{run['fixed_tok_s'] / peer:.2f}×",
                          style="bold" if label == "mean" else None)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="updates of 64 sentences (one pass over steps × 64 pairs)")
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds; the first toolkit alternates")
    parser.add_argument("--peer-venv", type=Path, default=Path("runs/bench/opennmt-venv"))
    parser.add_argument("--workers", type=int, choices=[1, 2], default=2,
                        help="seqforge's Ray Train workers (2 × 1 CPU as the default profile, or 1 × 2 CPUs)")
    parser.add_argument("--decode-only", action="store_true",
                        help="decode the checkpoints the last round of training left, without training")
    parser.add_argument("--profile", action="store_true",
                        help="also profile each toolkit's fixed-length decoding (torch.profiler), ops side by side")
    parser.add_argument("--minutes", type=float, help="time to BLEU: each toolkit's recipe for this many minutes")
    parser.add_argument("--ours-at", type=float, action="append",
                        help="with --minutes: seqforge's budgets in minutes (repeat; default: --minutes)")
    parser.add_argument("--every", type=int, default=400, help="with --minutes: OpenNMT-py's updates per checkpoint")
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    bin_dir = ensure_peer(args.peer_venv)
    if args.minutes is None:
        speed(args, bin_dir)
        return
    args.ours_at = args.ours_at or [args.minutes]
    time_to_bleu(args, bin_dir)


if __name__ == "__main__":
    main()
