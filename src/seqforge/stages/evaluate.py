"""Evaluate an exported model on its task's test split; write metrics, samples and attention
heatmaps, and log them to the model's MLflow run.

The task's kind computes its metrics (translation: sacreBLEU BLEU/chrF with a tokenizer for the
target language; chatbot: BLEU-1/2, distinct-n, length, top-10 share). Every task: test
perplexity and decoding speed.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
from datasets import load_from_disk

from seqforge import paths
from seqforge.config.shared import load_config
from seqforge.inference.attention_maps import save_attention_maps
from seqforge.inference.predictor import Predictor
from seqforge.tasks.base import TaskCfg
from seqforge.tasks.registry import load_task, task_kind
from seqforge.tracking.client import setup_mlflow


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
    report = {"task": task.name, "kind": task.kind, "split": "test", "metrics": metrics,
              "signature": scores["signature"], "decode": task.decode.model_dump()}
    return report, predictor, test, nbest, hyps


def evaluate_experiment(name: str) -> dict:
    """Decode the test split with `models/<name>`; write `metrics/<name>.json` and sample outputs."""
    import mlflow

    cfg = load_config()
    task = load_task(Predictor.read_meta(paths.model_dir(name))["task"]["name"])
    kind = task_kind(task.kind)
    report, predictor, test, nbest, hyps = test_report(paths.model_dir(name), task)
    report, metrics = {"experiment": name, **report}, report["metrics"]
    paths.METRICS.mkdir(exist_ok=True)
    paths.metrics_file(name).write_text(json.dumps(report, indent=2) + "\n")
    samples = [{"source": s, "reference": r, "hypothesis": h}
               for s, r, h in zip(test["source"], test["target"], hyps, strict=True)][: cfg.evaluate.num_samples]
    sample_file = paths.REPORTS / name / "samples.json"
    sample_file.parent.mkdir(parents=True, exist_ok=True)
    sample_file.write_text(json.dumps(samples, indent=2, ensure_ascii=False) + "\n")
    shown_maps = slice(cfg.evaluate.attention_samples)
    attention_dir = paths.REPORTS / name / "attention"
    shutil.rmtree(attention_dir, ignore_errors=True)
    save_attention_maps(predictor.model, predictor.tokenizer, test["src_ids"][shown_maps],
                        [hyps[0] for hyps in nbest[shown_maps]], attention_dir, name)

    setup_mlflow(cfg.mlflow.experiment)
    with mlflow.start_run(run_id=predictor.meta["run_id"]):
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        mlflow.log_dict(report, "evaluation/metrics.json")
        mlflow.log_table(pd.DataFrame(samples, columns=["source", "reference", "hypothesis"]),
                         "evaluation/samples.json")
        mlflow.log_artifacts(str(attention_dir), "attention")
        mlflow.set_tags({f"signature.{k}": v for k, v in report["signature"].items()})
    print(f"{name}: " + ", ".join(f"{k} {metrics[k]}" for k in kind.shown_metrics))
    for signature in report["signature"].values():
        print(f"  {signature}")
    return report
