"""Data path at scale: prepare and tokenize of a synthetic corpus of N pairs, and the loader's memory.

    python -m bench.data_scale --pairs 200000 2000000 [--plan] [--workdir DIR]

For each N, a synthetic TSV corpus (Zipf-distributed words, 4-30 per side) goes through the real
`prepare` and `tokenize` stages, each in its own process; the table shows their wall time,
pairs/s and peak RSS (the whole process tree, `datasets.map` workers included, sampled every
0.1 s). The loader columns build the training `TokenizedSplit` and its token-budget sampler and
iterate 300 batches: the process's RSS growth, and its anonymous part (RSS also counts the pages
of the memory-mapped Arrow file that were read, which the kernel reclaims under pressure);
Multi30k (train, the same code) is the reference. The corpus is generated outside the timed stages and
added as a user would add it (`seqforge task add`, so the recipe of `conf/recipes.yaml` sizes its
vocabulary). `--plan` then prints `seqforge plan` for each synthetic task: the updates, evaluations and
time the default budget buys at that size on this machine (a timed probe of each experiment).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
LOADER = """
import sys, psutil, torch
from pathlib import Path
from datasets import load_from_disk
from torch.utils.data import DataLoader
from seqforge.data.batching import TokenBudgetBatchSampler, collate
from seqforge.data.datasets import TokenizedSplit
proc = psutil.Process()
def anon():  # anonymous memory: what the loader allocates (mapped Arrow pages are reclaimable page cache)
    return int(next(l for l in open("/proc/self/status") if l.startswith("RssAnon")).split()[1]) * 1024
before, before_anon = proc.memory_info().rss, anon()
data = TokenizedSplit(load_from_disk(sys.argv[1])["train"])
sampler = TokenBudgetBatchSampler(data.lengths, 6000, shuffle=True, seed=0)
for i, batch in enumerate(DataLoader(data, batch_sampler=sampler, collate_fn=collate)):
    if i == 300:
        break
print(len(data), (proc.memory_info().rss - before) / 2**20, (anon() - before_anon) / 2**20)
"""


def synthetic_corpus(path: Path, n: int, seed: int = 0) -> None:
    """`n` tab-separated pairs of Zipf-distributed pseudo-words (a 30k-word vocabulary per side)."""
    rng = np.random.default_rng(seed)
    syllables = np.array(["ka", "to", "mi", "ren", "sa", "lo", "vi", "du", "ne", "po", "gar", "el", "ush", "te"])
    vocab = ["".join(rng.choice(syllables, size=rng.integers(1, 4))) + str(i % 7) for i in range(30_000)]
    words = np.array(vocab)
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            lens = rng.integers(4, 31, size=(m, 2))
            lens[:, 1] = np.clip(lens[:, 0] + rng.integers(-3, 4, size=m), 3, 30)  # translations: similar lengths
            ids = np.minimum(rng.zipf(1.3, size=(m, 2, 30)) - 1, len(vocab) - 1)
            lines = [
                " ".join(words[ids[i, 0, : lens[i, 0]]]) + "\t" + " ".join(words[ids[i, 1, : lens[i, 1]]][::-1])
                for i in range(m)
            ]
            out.write("\n".join(lines) + "\n")


def measured(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `cmd` with all its child processes."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return time.perf_counter() - start, peak / 2**20


def project(workdir: Path) -> tuple[Path, dict]:
    """A scratch project: conf/ and pipelines/ of this checkout, the default profile."""
    shutil.copytree(ROOT / "conf", workdir / "conf")
    shutil.copytree(ROOT / "pipelines", workdir / "pipelines")
    env = {**os.environ, "PYTHONPATH": str(workdir), "TOKENIZERS_PARALLELISM": "true", "COLUMNS": "160"}
    subprocess.run(
        [sys.executable, "-m", "seqforge.cli", "profile", "default"],
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
    )
    return workdir, env


def seqforge(root: Path, env: dict, *args: str) -> str:
    """Run a `seqforge` command in the scratch project; its output, or exit with its error."""
    done = subprocess.run(
        [sys.executable, "-m", "seqforge.cli", *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"seqforge {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def add_synthetic(root: Path, env: dict, n: int) -> tuple[str, str]:
    """Write a synthetic corpus of `n` pairs and add it as a task with `seqforge task add`: (task, recipe line)."""
    name = f"syn{n}"
    data = root / "data" / name
    data.mkdir(parents=True)
    synthetic_corpus(data / "pairs.tsv", n)
    digest = hashlib.sha256((data / "pairs.tsv").read_bytes()).hexdigest()
    corpus = {
        "format": "tsv",
        "languages": ["xx", "yy"],
        "columns": {"xx": 0, "yy": 1},
        "split": {"validation": 2000, "test": 2000},
        "files": {"pairs.tsv": digest},
    }
    (root / "conf" / "corpora" / f"{name}.yaml").write_text(yaml.safe_dump(corpus))
    added = seqforge(
        root,
        env,
        "task",
        "add",
        name,
        "--kind",
        "translation",
        "--corpus",
        name,
        "--src",
        "xx",
        "--tgt",
        "yy",
        "--experiments",
        "gru_bahdanau,transformer",
    )
    return name, next((line for line in added.splitlines() if line.startswith("recipe:")), "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--plan", action="store_true", help="print `seqforge plan` for each synthetic task")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="seqforge-scale-"))
    root, env = project(workdir)
    console = Console(width=120)
    fetch = subprocess.run(
        [sys.executable, "-m", "seqforge.cli", "fetch"], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    reference = [("multi30k en-de", "translation", 31_014)] if fetch.returncode == 0 else []
    if not reference:
        console.print(f"[yellow]no Multi30k reference ({fetch.stderr.strip()[-200:]})[/]")
    synthetic = []
    for n in args.pairs:
        console.print(f"generating {n:,} synthetic pairs ...")
        task, recipe = add_synthetic(root, env, n)
        print(recipe)
        synthetic.append((f"synthetic {n:,}", task, n))
    table = Table(title=f"data path at scale ({os.cpu_count()} cores; pairs/s: input pairs over prepare + tokenize)")
    for col in (
        "corpus",
        "train pairs",
        "prepare s",
        "tokenize s",
        "pairs/s (both)",
        "peak RSS prepare",
        "peak RSS tokenize",
        "loader RSS +",
        "loader anon +",
    ):
        table.add_column(col, justify="right")
    for label, task, n in reference + synthetic:
        prepare_s, prepare_rss = measured([sys.executable, "-m", "pipelines.prepare", task], root, env)
        tokenize_s, tokenize_rss = measured([sys.executable, "-m", "pipelines.tokenize", task], root, env)
        loader = subprocess.run(
            [sys.executable, "-c", LOADER, str(root / "artifacts" / "tokenized" / task)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        pairs = int(loader[0])
        table.add_row(
            label,
            f"{pairs:,}",
            f"{prepare_s:.1f}",
            f"{tokenize_s:.1f}",
            f"{n / (prepare_s + tokenize_s):,.0f}",
            f"{prepare_rss:,.0f} MiB",
            f"{tokenize_rss:,.0f} MiB",
            f"{float(loader[1]):,.0f} MiB",
            f"{float(loader[2]):,.0f} MiB",
        )
        console.print(f"{label}: done")
    console.print(table)
    for label, task, _ in synthetic if args.plan else []:
        print(f"{label}:\n" + seqforge(root, env, "plan", task))  # its own table, as wide as COLUMNS
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
