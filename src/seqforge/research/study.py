"""The classic claims about sequence models, measured by the pipeline itself (`seqforge study`).

`conf/study.yaml` lists the models (cell × attention, a unidirectional encoder, no clipping, the
Transformer); each is sized to the same parameter budget and trained under the same wall-time cap on
Ray Train, as one MLflow child run of the study's parent run. Every run measures its own gradients
(`seqforge.training.diagnostics`); the study adds test BLEU/chrF overall and by source length, and writes
`metrics/study.json`, plots and CSVs (`dvc plots`) in `reports/study/`, and `reports/study/README.md`,
which states each claim beside the measured numbers and says where they disagree.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from seqforge.config.shared import TrainCfg, load_config
from seqforge.core import paths
from seqforge.corpora.synthetic import MARKER
from seqforge.data.text import length_unit, lengths
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.experiments.config import ExperimentCfg, with_overrides
from seqforge.inference.evaluation import decode_split
from seqforge.models.registry import build_model, count_parameters, family
from seqforge.research import study_long_report, study_report
from seqforge.research.study_config import STUDIES, StudyCfg, load_study
from seqforge.tasks.base import TaskCfg
from seqforge.tasks.registry import load_task, task_kind
from seqforge.tracking.client import metric_steps, setup_mlflow
from seqforge.training.driver import fit_and_export
from seqforge.training.run_record import track_run

REPORTS = {"classic": study_report.write_report, "long": study_long_report.write_report}  # summary, folder -> claims
VANISHED = 1e-6  # the gradient has vanished at the distance where it falls below this share of its d = 0 value


def outputs(name: str) -> tuple[Path, Path]:
    """Study `name`'s report folder and summary file: reports/<stem>/, metrics/<stem>.json."""
    stem = STUDIES[name]
    return paths.REPORTS / stem, paths.METRICS / f"{stem}.json"


def sized(exp: ExperimentCfg, width: dict[str, int], budget: int, step: int, vocab: tuple[int, int]) -> ExperimentCfg:
    """`exp` with the `width` keys set to the multiple of `step` whose parameter count is nearest `budget`
    (the count grows with the width: a bisection over multiples)."""
    if exp.model.arch == "transformer":
        step = math.lcm(step, exp.model.heads)

    def at(multiple: int) -> tuple[ExperimentCfg, int]:
        changed = with_overrides(
            exp, {key: multiple * step * factor for key, factor in width.items()}, f"study: {exp.name}: width"
        )
        return changed, count_parameters(build_model(changed.model, *vocab))

    low, high = 1, 2
    while at(high)[1] < budget:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if at(mid)[1] < budget else (low, mid)
    return min((at(low), at(high)), key=lambda pair: abs(pair[1] - budget))[0]


def bucket_labels(edges: list[int]) -> list[str]:
    """[10, 15] -> ['≤10', '11–15', '>15']."""
    return [f"≤{edges[0]}", *(f"{a + 1}–{b}" for a, b in pairwise(edges)), f">{edges[-1]}"]


def bleu_by_length(
    sources: list[str], hyps: list[str], refs: list[str], edges: list[int], unit: str, tokenize: str
) -> list[dict[str, Any]]:
    """Corpus BLEU (sacreBLEU, `tokenize`) of the test sentences in each source-length bucket."""
    from sacrebleu.metrics import BLEU

    counted = lengths(pa.array(sources, pa.string()), unit)
    which = np.searchsorted(np.asarray(edges), counted, side="left")  # ≤ edges[0] -> 0, ...
    rows = []
    for bucket, label in enumerate(bucket_labels(edges)):
        chosen = np.flatnonzero(which == bucket)
        score = (
            BLEU(tokenize=tokenize).corpus_score([hyps[i] for i in chosen], [[refs[i] for i in chosen]]).score
            if chosen.size
            else math.nan
        )
        rows.append({"bucket": label, "sentences": int(chosen.size), "bleu": round(score, 2)})
    return rows


def accuracy_by_length(sources: list[str], hyps: list[str], refs: list[str], edges: list[int]) -> list[dict[str, Any]]:
    """Exact match and token accuracy (the share of reference positions the hypothesis gets right) of a
    synthetic corpus's test rows, per sub-task (a source's first word) and length bucket (its symbols)."""
    rows = []
    tasks = [src.split(maxsplit=1)[0] for src in sources]
    symbols = np.asarray([sum(w != MARKER for w in src.split()[1:]) for src in sources])
    which = np.searchsorted(np.asarray(edges), symbols, side="left")
    for task in dict.fromkeys(tasks):
        for bucket, label in enumerate(bucket_labels(edges)):
            chosen = [i for i in np.flatnonzero(which == bucket) if tasks[i] == task]
            pairs = [(hyps[i].split(), refs[i].split()) for i in chosen]
            right = sum(sum(a == b for a, b in zip(h, r, strict=False)) for h, r in pairs)
            total = sum(len(r) for _, r in pairs)
            rows.append(
                {
                    "task": task,
                    "bucket": label,
                    "sentences": len(pairs),
                    "exact_match": round(100 * sum(h == r for h, r in pairs) / len(pairs), 2) if pairs else math.nan,
                    "token_accuracy": round(100 * right / total, 2) if total else math.nan,
                }
            )
    return rows


LENGTH_METRICS = {  # `length_metric`: sources, hypotheses, references, the bucket edges, the task -> rows
    "bleu": lambda src, hyps, refs, edges, task: bleu_by_length(
        src,
        hyps,
        refs,
        edges,
        length_unit(task.src_lang, getattr(task.data, "length_unit", "auto")),
        task_kind(task.kind).validation_bleu(task),
    ),
    "accuracy": lambda src, hyps, refs, edges, task: accuracy_by_length(src, hyps, refs, edges),
}


def _bucket_metrics(rows: list[dict[str, Any]], edges: list[int]) -> dict[str, float]:
    """By-length rows as MLflow metrics: `test_bleu_len<i>`, or `test_exact_<sub-task>_len<i>` (i: the bucket)."""
    labels = bucket_labels(edges)
    return {
        f"test_{'bleu' if 'bleu' in r else 'exact_' + r['task']}_len{labels.index(r['bucket'])}": r["bleu"]
        if "bleu" in r
        else r["exact_match"]
        for r in rows
        if r["sentences"]
    }


def vanishing_distance(curve: list[float]) -> int | None:
    """The first distance whose gradient norm is below `VANISHED` × the norm at d = 0 (None: none is)."""
    return next((d for d, value in enumerate(curve) if curve[0] > 0 and value < VANISHED * curve[0]), None)


def _history(client, run_id: str, metric: str) -> list[tuple[int, float]]:
    """(step, value) of one metric in step order."""
    return sorted(metric_steps(client, run_id, metric).items())


def _norms(records: dict[str, dict]) -> dict[str, Any]:
    """Pre-clip gradient norms over the whole run: summed histogram, clip rate, the largest epoch quantiles."""
    epochs = [r["grad_norm"] for r in records.values() if "grad_norm" in r]
    if not epochs:
        return {}
    updates = sum(e["updates"] for e in epochs)
    return {
        "updates": updates,
        "nonfinite": sum(e["nonfinite"] for e in epochs),
        "clip_rate": sum(e["clip_rate"] * e["updates"] for e in epochs) / max(updates, 1),
        "p50_last_epoch": epochs[-1]["p50"],
        "p99_max": max(e["p99"] for e in epochs),
        "max": max(e["max"] for e in epochs),
        "histogram": [sum(col) for col in zip(*(e["histogram"] for e in epochs), strict=True)],
    }


def study_model(
    name: str,
    exp: ExperimentCfg,
    task: TaskCfg,
    train_cfg: TrainCfg,
    study: StudyCfg,
    run_id: str,
    ray_name: str,
    profile: str,
) -> dict[str, Any]:
    """Train, export and test one model inside its (active) MLflow child run; returns its measurements."""
    import mlflow
    from mlflow import MlflowClient

    meta = track_run(exp, task, train_cfg, run_id, profile)
    model_dir = paths.ARTIFACTS / STUDIES[name] / exp.name
    start = time.perf_counter()
    export = fit_and_export(exp, task, train_cfg, meta, model_dir, ray_name)
    train_seconds = time.perf_counter() - start
    kind = task_kind(task.kind)
    _, test, _, hyps, seconds = decode_split(model_dir, task)
    scores = {k: v for k, v in kind.scores(hyps, test["target"], task.model_dump()).items() if k != "signature"}
    by_length = f"{study.length_metric}_by_length"
    buckets = LENGTH_METRICS[study.length_metric](test["source"], hyps, test["target"], study.length_buckets, task)
    mlflow.log_metrics(
        {**{f"test_{k}": v for k, v in scores.items()}, **_bucket_metrics(buckets, study.length_buckets)}
    )
    mlflow.log_dict(buckets, f"evaluation/{by_length}.json")
    client = MlflowClient()
    records = export["diagnostics"]
    trained = max(records, key=int) if records else None
    val_metric, mode = kind.monitor
    return {
        "model": exp.model.model_dump(),
        "clip_norm": exp.optim.clip_norm,
        "optimizer": exp.optim.optimizer,
        "lr": exp.optim.lr,
        "parameters": meta["num_parameters"],
        "run_id": run_id,
        "train_seconds": round(train_seconds, 1),
        "epochs": len(_history(client, run_id, "val_loss")),
        "updates": records[trained]["step"] if trained else 0,
        "tokens_per_s": round(
            float(np.mean([v for _, v in _history(client, run_id, "tokens_per_s")] or [math.nan])), 1
        ),
        f"best_{val_metric}": (max if mode == "max" else min)(
            (v for _, v in _history(client, run_id, val_metric)), default=math.nan
        ),
        "test": scores,
        "test_decode_sentences_per_s": round(len(hyps) / seconds, 1),
        by_length: buckets,
        "encoder_grad": {
            "initialisation": records.get("0", {}).get("encoder_grad", []),
            "trained": records[trained]["encoder_grad"] if trained else [],
        },
        "vanishing_distance": {
            "initialisation": vanishing_distance(records.get("0", {}).get("encoder_grad", [1.0])),
            "trained": vanishing_distance(records[trained]["encoder_grad"]) if trained else None,
        },
        "decay": {
            "initialisation": records.get("0", {}).get("decay", math.nan),
            "trained": records[trained]["decay"] if trained else math.nan,
        },
        "grad_norm": _norms(records),
        "train_loss": _history(client, run_id, "train_loss_step"),
        "val_loss": [v for _, v in _history(client, run_id, "val_loss")],
    }


def run_study(name: str = "classic") -> dict[str, Any]:
    """Train and measure every model of study `name` (`conf/study.yaml`, `conf/study_long.yaml`); write the
    outputs; returns the summary."""
    import mlflow

    cfg = load_config()
    study, plans = load_study(name=name)
    report_dir, summary_file = outputs(name)
    task = load_task(study.task)
    if not paths.tokenizer_file(study.task).is_file():
        raise FileNotFoundError(
            f"{paths.tokenized_dir(study.task)}: the study's task is not tokenized yet; "
            f"`dvc repro studies/dvc.yaml` builds it first"
        )
    tokenizer = SubwordTokenizer.load(paths.tokenizer_file(study.task))
    vocab = (tokenizer.vocab_size("source"), tokenizer.vocab_size("target"))
    sized_plans = {
        model: (
            sized(
                exp,
                study.models[model].width or family(exp.model.arch).width,
                study.parameter_budget,
                study.width_step,
                vocab,
            ),
            train,
        )
        for model, (exp, train) in plans.items()
    }
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    started = time.perf_counter()
    results: dict[str, Any] = {}
    experiment_id = setup_mlflow(cfg.mlflow.experiment)
    summary_file.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every model and before the report: a failure later keeps what was measured
        summary["wall_seconds"] = round(time.perf_counter() - started, 1)
        summary_file.write_text(json.dumps(summary, indent=1, allow_nan=True) + "\n")

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"study-{stamp}") as parent:
        mlflow.set_tags({"study": f"study-{stamp}", "task": study.task, "profile": cfg.profile})
        mlflow.log_params(
            {
                "parameter_budget": study.parameter_budget,
                "models": ",".join(plans),
                **{f"train.{k}": v for k, v in study.train.items()},
            }
        )
        summary = {
            "study": f"study-{stamp}",
            "name": name,
            "parent_run_id": parent.info.run_id,
            "task": study.task,
            "profile": cfg.profile,
            "parameter_budget": study.parameter_budget,
            "train": sized_plans[next(iter(sized_plans))][1].model_dump(mode="json"),
            "length_metric": study.length_metric,
            "length_buckets": bucket_labels(study.length_buckets),
            "wall_seconds": 0.0,
            "models": results,
        }
        for model, (exp, train_cfg) in sized_plans.items():
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"study-{model}", nested=True) as child:
                mlflow.set_tags({"study": f"study-{stamp}", "study_model": model})
                results[model] = study_model(
                    name,
                    exp,
                    task,
                    train_cfg,
                    study,
                    child.info.run_id,
                    f"{model}-study{stamp.replace('-', 'T')}",
                    cfg.profile,
                )
            save()
        summary["claims"] = REPORTS[name](summary, report_dir)  # failing, `--report-only` redoes it from the file
        save()
        mlflow.log_dict(summary, f"study/{summary_file.name}")
        mlflow.log_artifacts(str(report_dir), "study")
        mlflow.log_metric("wall_seconds", summary["wall_seconds"])
    return summary


def rewrite_report(name: str = "classic") -> dict[str, Any]:
    """The report and claims of study `name` again from its summary file, without training (after a change
    to how claims are judged or worded); returns the updated summary."""
    report_dir, summary_file = outputs(name)
    if not summary_file.is_file():
        raise FileNotFoundError(f"{summary_file}: no study measured yet; run `seqforge study --study {name}` first")
    summary = json.loads(summary_file.read_text())
    summary["claims"] = REPORTS[name](summary, report_dir)
    summary_file.write_text(json.dumps(summary, indent=1, allow_nan=True) + "\n")
    return summary
