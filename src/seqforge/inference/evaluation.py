"""An exported model measured on a split of its task: the split decoded with the task's decoding settings and
scored by the task's kind, with test perplexity and decoding speed. The evaluate stage, `seqforge export` and
the studies all measure a model this way."""

from __future__ import annotations

import time
from pathlib import Path

from datasets import load_from_disk

from seqforge.core import paths
from seqforge.inference.predictor import Predictor
from seqforge.tasks.base import TaskCfg
from seqforge.tasks.registry import task_kind


def decode_split(model_dir: Path, task: TaskCfg, split: str = "test") -> tuple[Predictor, dict, list, list[str], float]:
    """Decode a tokenized split of `task` with the exported model in `model_dir` and the task's decoding
    settings: the predictor, the split's columns, n-best ids, best hypotheses as text, and the seconds taken."""
    predictor = Predictor.load(model_dir, task.decode)
    data = load_from_disk(str(paths.tokenized_dir(task.name)))[split].to_dict()
    start = time.perf_counter()
    nbest = predictor.generate_ids(data["src_ids"], task.decode)
    seconds = time.perf_counter() - start
    return predictor, data, nbest, predictor.tokenizer.decode([hyps[0] for hyps in nbest], "target"), seconds


def test_report(model_dir: Path, task: TaskCfg) -> tuple[dict, Predictor, dict, list, list[str]]:
    """The test split decoded with the model in `model_dir` and scored by the task's kind: the report
    (metrics, sacreBLEU signatures, decoding settings), the predictor, the split's columns, n-best ids and
    the best hypotheses as text."""
    predictor, test, nbest, hyps, seconds = decode_split(model_dir, task)
    scores = task_kind(task.kind).scores(hyps, test["target"], task.model_dump())
    metrics = {
        **{k: v for k, v in scores.items() if k != "signature"},
        "ppl": round(predictor.perplexity(test["src_ids"], test["tgt_ids"], task.decode.batch_size), 3),
        "decode_sentences_per_s": round(len(hyps) / seconds, 2),
        "decode_tokens_per_s": round(sum(len(h[0]) for h in nbest) / seconds, 1),
        "sentences": len(hyps),
    }
    report = {
        "task": task.name,
        "kind": task.kind,
        "split": "test",
        "metrics": metrics,
        "signature": scores["signature"],
        "decode": task.decode.model_dump(),
    }
    return report, predictor, test, nbest, hyps
