"""The evidence for conf/recipes.yaml: one experiment, several sizes, one corpus size, the same wall time each.

    SEQFORGE_DATA_MIRROR=../shared/data python -m bench.recipes --pairs 3000 --budget 8m \\
        --cell vocab=8000,dropout=0.2 --cell vocab=4000,dropout=0.4 [--src en --tgt de] [--experiment gru_bahdanau]

A seeded sample of Multi30k's training set (`--pairs` + 600 lines) goes in as a user's TSV (`corpus add`, 300
validation and 300 test pairs held out) in a scratch copy of this checkout (`runs/bench/recipes/`), one task per
vocabulary (`task add --budget`, without conf/recipes.yaml), one experiment per cell; `dvc repro evaluate@<cell>`
trains each cell through the real stages, one after another. The table shows the best validation BLEU (greedy, at
the evaluations the plan makes) — what a rule is chosen on — and, for the record, test BLEU (beam). A cell sets
`vocab`, `dropout`, `emb` and `hidden` (RNN: `emb_dim`/`hidden_dim`; Transformer: `d_model`, `ffn_dim` 4x) and
`layers`; unset keys keep the template's values. `epochs=N` trains the cell for N epochs instead of the budget (what
a template's epochs give at this size). Run again to add cells: finished ones are kept.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = 300  # validation and test pairs each


def parse_cell(text: str) -> dict[str, float]:
    """`vocab=4000,dropout=0.4` -> {"vocab": 4000, "dropout": 0.4}."""
    cell = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in ("vocab", "dropout", "emb", "hidden", "layers", "epochs"):
            raise SystemExit(f"--cell {text!r}: unknown key {key!r} (vocab, dropout, emb, hidden, layers, epochs)")
        try:
            cell[key] = float(value) if key == "dropout" else int(value)
        except ValueError:
            kind = "number" if key == "dropout" else "whole number"
            raise SystemExit(f"--cell {text!r}: {key}={value!r} is not a {kind}") from None
    return cell


def cell_name(cell: dict) -> str:
    return "_".join(f"{k[0]}{str(v).replace('.', '')}" for k, v in sorted(cell.items())) or "template"


def model_values(cell: dict, arch: str) -> dict:
    """The cell's keys as an experiment's `model` values for family `arch`."""
    values = {"dropout": cell["dropout"]} if "dropout" in cell else {}
    if arch == "rnn":
        values |= {k: cell[c] for c, k in (("emb", "emb_dim"), ("hidden", "hidden_dim")) if c in cell}
        values |= {k: cell["layers"] for k in ("enc_layers", "dec_layers") if "layers" in cell}
    else:
        values |= {
            k: v
            for k, v in (("d_model", cell.get("emb")), ("ffn_dim", 4 * cell["emb"] if "emb" in cell else None))
            if v is not None
        }
        values |= {k: cell["layers"] for k in ("enc_layers", "dec_layers") if "layers" in cell}
    return values


def sample_tsv(mirror: Path, out: Path, pairs: int, src: str, tgt: str, seed: int = 0) -> None:
    """`pairs` + 2 x HELD_OUT seeded lines of Multi30k's training set, as `src<TAB>tgt`."""
    sides = []
    for lang in (src, tgt):
        with gzip.open(mirror / "multi30k" / f"train.{lang}.gz", "rt", encoding="utf-8") as fh:
            sides.append(fh.read().splitlines())
    rows = random.Random(seed).sample(range(len(sides[0])), pairs + 2 * HELD_OUT)
    # a few Multi30k sentences hold a tab: a space in a TSV cell
    out.write_text(
        "".join("\t".join(side[i].replace("\t", " ") for side in sides) + "\n" for i in rows), encoding="utf-8"
    )


def scratch_repo(path: Path) -> Path:
    """A copy of this checkout's tracked and untracked files at `path`, as a git repository (once)."""
    if (path / ".git").is_dir():
        return path
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, path / name)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "scratch"],
        ["seqforge", "profile", "default"],
        ["seqforge", "fetch"],
    ):  # data.dvc checks every corpus
        subprocess.run(cmd, cwd=path, check=True, stdout=subprocess.DEVNULL)
    (path / "conf" / "recipes.yaml").unlink(missing_ok=True)  # cells start from the template, not from a rule
    return path


def run(cmd: list[str], cwd: Path, log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        if subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode:
            raise SystemExit(f"{' '.join(cmd)} failed: see {log}")


def add_cell(repo: Path, corpus: str, cell: dict, args: argparse.Namespace, log: Path) -> str:
    """Task (per vocabulary) and experiment of one cell; the experiment's name."""
    task = f"{corpus}-v{cell.get('vocab', 0)}"
    if not (repo / "conf" / "tasks" / f"{task}.yaml").exists():
        run(
            [
                "seqforge",
                "task",
                "add",
                task,
                "--kind",
                "translation",
                "--corpus",
                corpus,
                "--src",
                args.src,
                "--tgt",
                args.tgt,
                "--experiments",
                args.experiment,
                "--budget",
                args.budget,
            ],
            repo,
            log,
        )
        if "vocab" in cell:
            task_file = repo / "conf" / "tasks" / f"{task}.yaml"
            values = yaml.safe_load(task_file.read_text())
            values["tokenizer"]["vocab_size"] = cell["vocab"]
            task_file.write_text(yaml.safe_dump(values, sort_keys=False))
    name = f"{task}_{cell_name(cell)}"
    exp_file = repo / "conf" / "experiments" / f"{name}.yaml"
    if not exp_file.exists():
        values = yaml.safe_load((repo / "conf" / "experiments" / f"{task}_{args.experiment}.yaml").read_text())
        values["model"] |= model_values(cell, values["model"]["arch"])
        if "epochs" in cell:  # explicit epochs replace the budget task add wrote
            values["train"] = {k: v for k, v in values.get("train", {}).items() if k != "budget"} | {
                "max_epochs": cell["epochs"]
            }
        exp_file.write_text(yaml.safe_dump(values, sort_keys=False))
    return name


def trained_for(log: Path, name: str) -> str:
    """The elapsed time of the cell's last evaluation line in the bench log (`H:MM:SS`): `evaluation N/M` for a
    budget, `epoch N` for an `epochs` cell."""
    lines = [
        line for line in log.read_text().splitlines() if line.startswith((f"{name} evaluation ", f"{name} epoch "))
    ]
    return re.search(r"elapsed (\d+:\d\d:\d\d)", lines[-1]).group(1) if lines else "?"


def result(repo: Path, name: str, log: Path) -> dict:
    curve = list(csv.DictReader((repo / "metrics" / "curves" / f"{name}.csv").open()))
    best = max(curve, key=lambda row: float(row["val_bleu"]))
    model = json.loads((repo / "models" / name / "model.json").read_text())
    test = json.loads((repo / "metrics" / f"{name}.json").read_text())
    return {
        "experiment": name,
        "parameters": model["num_parameters"],
        "updates": int(curve[-1]["update"]),
        "trained_for": trained_for(log, name),
        "best_val_bleu": float(best["val_bleu"]),
        "best_at_update": int(best["update"]),
        "last_val_bleu": float(curve[-1]["val_bleu"]),
        "test_bleu": test["metrics"]["bleu"],
        "test_bleu_lc": test["metrics"]["bleu_lc"],
        "test_chrf": test["metrics"]["chrf"],
        "undertrained": model.get("undertrained"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, required=True, help="training pairs of the sample")
    parser.add_argument("--budget", default="8m", help="each cell's training time")
    parser.add_argument("--cell", action="append", type=parse_cell, required=True)
    parser.add_argument("--src", default="en")
    parser.add_argument("--tgt", default="de")
    parser.add_argument("--experiment", default="gru_bahdanau", help="the template every cell starts from")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench" / "recipes")
    args = parser.parse_args()
    mirror = Path(os.environ.get("SEQFORGE_DATA_MIRROR", ROOT.parent / "shared" / "data"))
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

    corpus = f"m{args.pairs // 1000}k-{args.src}{args.tgt}"
    repo = scratch_repo(args.workdir / "repo")
    log = args.workdir / f"{corpus}.log"
    if not (repo / "conf" / "corpora" / f"{corpus}.yaml").exists():
        sample = args.workdir / f"{corpus}.tsv"
        sample_tsv(mirror, sample, args.pairs, args.src, args.tgt)
        run(
            [
                "seqforge",
                "corpus",
                "add",
                corpus,
                "--format",
                "tsv",
                "--source",
                str(sample),
                "--columns",
                f"{args.src}=0,{args.tgt}=1",
                "--split",
                f"validation={HELD_OUT},test={HELD_OUT}",
            ],
            repo,
            log,
        )
    names = [add_cell(repo, corpus, cell, args, log) for cell in args.cell]
    run(["seqforge", "sync"], repo, log)
    rows = []
    for name in names:
        run(["dvc", "repro", f"evaluate@{name}"], repo, log)
        rows.append(result(repo, name, log))
    out = ROOT / "reports" / "recipes" / f"{corpus}-{args.experiment}-{args.budget}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = {r["experiment"]: r for r in json.loads(out.read_text())} if out.exists() else {}
    out.write_text(json.dumps(list((previous | {r["experiment"]: r for r in rows}).values()), indent=2) + "\n")

    table = Table(
        title=f"{args.experiment} on {args.pairs:,} pairs of Multi30k {args.src}->{args.tgt}, "
        f"{args.budget} each (choose on validation)"
    )
    for column in (
        "cell",
        "params",
        "updates",
        "trained for",
        "best val BLEU (at update)",
        "last val BLEU",
        "test BLEU",
        "test chrF",
    ):
        table.add_column(column)
    for cell, row in zip(args.cell, rows, strict=True):
        table.add_row(
            cell_name(cell),
            f"{row['parameters']:,}",
            f"{row['updates']:,}",
            row["trained_for"],
            f"{row['best_val_bleu']:.2f} ({row['best_at_update']:,})",
            f"{row['last_val_bleu']:.2f}",
            f"{row['test_bleu']:.2f}",
            f"{row['test_chrf']:.2f}",
        )
    Console().print(table)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
