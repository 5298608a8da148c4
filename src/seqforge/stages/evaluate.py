"""Evaluate an exported model on its task's test split; write metrics, samples and attention
heatmaps, and log them to the model's MLflow run.

The task's kind computes its metrics (translation: sacreBLEU BLEU/chrF with a tokenizer for the
target language; chatbot: BLEU-1/2, distinct-n, length, top-10 share). Every task: test
perplexity and decoding speed.
"""

from __future__ import annotations

import json
import shutil

import mlflow
import pandas as pd

from seqforge.config.shared import load_config
from seqforge.core import paths
from seqforge.inference.attention_maps import save_attention_maps
from seqforge.inference.evaluation import test_report
from seqforge.inference.predictor import Predictor
from seqforge.tasks.registry import load_task, task_kind
from seqforge.tracking.client import setup_mlflow


def evaluate_experiment(name: str) -> dict:
    """Decode the test split with `models/<name>`; write `metrics/<name>.json` and sample outputs."""
    cfg = load_config()
    task = load_task(Predictor.read_meta(paths.model_dir(name))["task"]["name"])
    kind = task_kind(task.kind)
    report, predictor, test, nbest, hyps = test_report(paths.model_dir(name), task)
    report, metrics = {"experiment": name, **report}, report["metrics"]
    paths.METRICS.mkdir(exist_ok=True)
    paths.metrics_file(name).write_text(json.dumps(report, indent=2) + "\n")
    samples = [
        {"source": s, "reference": r, "hypothesis": h}
        for s, r, h in zip(test["source"], test["target"], hyps, strict=True)
    ][: cfg.evaluate.num_samples]
    sample_file = paths.REPORTS / name / "samples.json"
    sample_file.parent.mkdir(parents=True, exist_ok=True)
    sample_file.write_text(json.dumps(samples, indent=2, ensure_ascii=False) + "\n")
    shown_maps = slice(cfg.evaluate.attention_samples)
    attention_dir = paths.REPORTS / name / "attention"
    shutil.rmtree(attention_dir, ignore_errors=True)
    save_attention_maps(
        predictor.model,
        predictor.tokenizer,
        test["src_ids"][shown_maps],
        [hyps[0] for hyps in nbest[shown_maps]],
        attention_dir,
        name,
    )

    setup_mlflow(cfg.mlflow.experiment)
    with mlflow.start_run(run_id=predictor.meta["run_id"]):
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        mlflow.log_dict(report, "evaluation/metrics.json")
        mlflow.log_table(
            pd.DataFrame(samples, columns=["source", "reference", "hypothesis"]), "evaluation/samples.json"
        )
        mlflow.log_artifacts(str(attention_dir), "attention")
        mlflow.set_tags({f"signature.{k}": v for k, v in report["signature"].items()})
    print(f"{name}: " + ", ".join(f"{k} {metrics[k]}" for k in kind.shown_metrics))
    for signature in report["signature"].values():
        print(f"  {signature}")
    return report
