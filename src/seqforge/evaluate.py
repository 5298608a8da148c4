"""Evaluate an exported model on the test split: sacreBLEU BLEU/chrF, samples, MLflow logging."""

from __future__ import annotations

import json
import time

from datasets import load_from_disk

from seqforge import paths
from seqforge.config import load_config
from seqforge.metrics import corpus_scores
from seqforge.tracking import setup_mlflow
from seqforge.translator import Translator


def evaluate_experiment(name: str) -> dict:
    """Beam-search the test split with `models/<name>`; write `metrics/<name>.json` and samples."""
    import mlflow

    cfg = load_config()
    decode = cfg.evaluate.decode()
    translator = Translator.load(paths.model_dir(name), decode)
    test = load_from_disk(str(paths.tokenized_dir(translator.meta["task"])))["test"].to_dict()
    start = time.perf_counter()
    nbest = translator.translate_ids(test["src_ids"])
    seconds = time.perf_counter() - start
    hyps = translator.tokenizer.decode([hyps[0] for hyps in nbest], "target")
    scores = corpus_scores(hyps, test["target"])
    n_tokens = sum(len(h[0]) for h in nbest)
    metrics = {
        **{k: v for k, v in scores.items() if k != "signature"},
        "decode_sentences_per_s": round(len(hyps) / seconds, 2),
        "decode_tokens_per_s": round(n_tokens / seconds, 1),
        "test_sentences": len(hyps),
    }
    report = {"experiment": name, "split": "test", "metrics": metrics, "signature": scores["signature"],
              "decode": decode.model_dump()}
    paths.METRICS.mkdir(exist_ok=True)
    paths.metrics_file(name).write_text(json.dumps(report, indent=2) + "\n")
    samples = [{"source": s, "reference": r, "hypothesis": h}
               for s, r, h in zip(test["source"], test["target"], hyps, strict=True)][: cfg.evaluate.num_samples]
    sample_file = paths.REPORTS / name / "samples.json"
    sample_file.parent.mkdir(parents=True, exist_ok=True)
    sample_file.write_text(json.dumps(samples, indent=2, ensure_ascii=False) + "\n")

    setup_mlflow(cfg.mlflow.experiment)
    with mlflow.start_run(run_id=translator.meta["run_id"]):
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        mlflow.log_dict(report, "evaluation/metrics.json")
        mlflow.log_dict({"samples": samples}, "evaluation/samples.json")
        mlflow.set_tags({f"sacrebleu.{k}": v for k, v in scores["signature"].items()})
    print(f"{name}: BLEU {metrics['bleu']} (lowercased {metrics['bleu_lc']}), chrF {metrics['chrf']}")
    print(f"  {scores['signature']['bleu']}")
    return report
