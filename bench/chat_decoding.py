"""Chat decoding strategies side by side on the validation split: quality, diversity and speed.

    python -m bench.chat_decoding [--experiment chatbot_gru_bahdanau] [--pairs 1000]

Decodes the first N validation pairs of the trained `models/<experiment>` with each strategy
(the configured `chatbot.decode` first, then variants of it) and prints the dialogue metrics.
This is how the default chat decoding in `conf/config.yaml` is chosen: on validation, never on test.
"""

from __future__ import annotations

import argparse
import time

from datasets import load_from_disk
from rich.console import Console
from rich.table import Table

from seqforge.core import paths
from seqforge.inference.predictor import Predictor
from seqforge.tasks.metrics import dialogue_scores
from seqforge.tasks.registry import load_task

VARIANTS = {
    "configured": {},
    "greedy": {"strategy": "beam", "beam_size": 1, "no_repeat_ngram": 0, "min_length": 0},
    "beam 5": {"strategy": "beam", "no_repeat_ngram": 0, "min_length": 0},
    "beam 5, block 3-grams": {"strategy": "beam", "no_repeat_ngram": 3},
    "beam 5, block 3, lp 2.0": {"strategy": "beam", "no_repeat_ngram": 3, "length_penalty": 2.0},
    "sample top-p 0.9, T 0.8": {"strategy": "sample", "top_p": 0.9, "top_k": 0, "temperature": 0.8},
    "sample top-p 0.8, T 0.7": {"strategy": "sample", "top_p": 0.8, "top_k": 0, "temperature": 0.7},
    "sample top-p 0.7, T 0.5": {"strategy": "sample", "top_p": 0.7, "top_k": 0, "temperature": 0.5},
    "sample top-k 10, T 0.7": {"strategy": "sample", "top_p": 1.0, "top_k": 10, "temperature": 0.7},
    "sample top-p 0.9, T 0.8, min 6": {
        "strategy": "sample",
        "top_p": 0.9,
        "top_k": 0,
        "temperature": 0.8,
        "min_length": 6,
    },
    "sample top-p 0.8, T 0.7, min 6": {
        "strategy": "sample",
        "top_p": 0.8,
        "top_k": 0,
        "temperature": 0.7,
        "min_length": 6,
    },
    "sample top-k 10, T 0.7, min 6": {
        "strategy": "sample",
        "top_p": 1.0,
        "top_k": 10,
        "temperature": 0.7,
        "min_length": 6,
    },
}
COLUMNS = ("bleu_1", "bleu_2", "distinct_1", "distinct_2", "mean_length", "top10_share")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="chatbot_gru_bahdanau")
    parser.add_argument("--pairs", type=int, default=1000, help="validation pairs decoded per strategy")
    parser.add_argument("--only", nargs="*", help="run only these strategies (names as in the table)")
    args = parser.parse_args()

    predictor = Predictor.load(paths.model_dir(args.experiment))
    task = load_task(predictor.meta["task"]["name"])
    base = task.decode
    val = load_from_disk(str(paths.tokenized_dir(task.name)))["validation"][: args.pairs]
    table = Table(title=f"{args.experiment}: {len(val['target'])} validation pairs", width=130)
    for col in ("strategy", *COLUMNS, "pairs/s"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for name, update in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        cfg = base.model_validate({**base.model_dump(), **update})
        start = time.perf_counter()
        nbest = predictor.generate_ids(val["src_ids"], cfg)
        seconds = time.perf_counter() - start
        scores = dialogue_scores(predictor.tokenizer.decode([h[0] for h in nbest], "target"), val["target"])
        table.add_row(
            name,
            *(f"{scores[c]:.4f}" if c != "mean_length" else f"{scores[c]:.1f}" for c in COLUMNS),
            f"{len(nbest) / seconds:.1f}",
        )
    table.caption = (
        f"references: distinct-1 {scores['ref_distinct_1']}, distinct-2 {scores['ref_distinct_2']}, "
        f"mean length {scores['ref_mean_length']}"
    )
    Console(width=130).print(table)


if __name__ == "__main__":
    main()
