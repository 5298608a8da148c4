"""Results tables from the committed outputs of the default-profile pipeline: `metrics/<experiment>.json`
(the evaluate stage), `metrics/curves/<experiment>.csv` (validation per evaluation) and
`metrics/data_<task>.json` (the prepare stage)."""

from __future__ import annotations

import csv
import io
import json
from functools import cache

from docs.gen import committed
from docs.gen.markdown import header
from seqforge.experiments.recipes import load_recipes

ROOT = committed.ROOT
METRICS = ROOT / "metrics"


def fmt(value: float | int | None, digits: int = 2) -> str:
    """A figure as the tables show it: thousands separated, `digits` decimals for non-integers."""
    if value is None or value == "":
        return "—"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


@cache
def report(name: str) -> dict:
    return json.loads(committed.read_text(METRICS / f"{name}.json"))


def experiments(kind: str) -> list[str]:
    """The experiments whose test report of `kind` is committed, in name order."""
    return sorted(
        p.stem
        for p in committed.files("metrics", "*.json")
        if not p.stem.startswith(("data_", "study")) and report(p.stem).get("kind") == kind
    )


def curve(name: str) -> list[dict[str, str]]:
    path = METRICS / "curves" / f"{name}.csv"
    if path not in committed.files("metrics/curves"):
        return []
    return list(csv.DictReader(io.StringIO(committed.read_text(path))))


def best(points: list[dict[str, str]], metric: str, mode: str) -> tuple[float | None, int | None]:
    """The best value of `metric` over a run's evaluations and the update it was reached at."""
    scored = [(float(p[metric]), int(p["update"])) for p in points if p.get(metric)]
    if not scored:
        return None, None
    return (max if mode == "max" else min)(scored, key=lambda s: s[0])


def trained(name: str, metric: str, mode: str, digits: int) -> str:
    """Two table cells of a run's curve: the updates it trained, and its best `metric` (at the update)."""
    points = curve(name)
    value, at = best(points, metric, mode)
    updates = fmt(int(points[-1]["update"])) if points else "—"
    return f"{updates} | {fmt(value, digits)} ({fmt(at)})"


def translation_table() -> str:
    lines = header(
        "experiment",
        "updates",
        "best val BLEU (greedy, at update)",
        "**test BLEU**",
        "lowercased",
        "chrF",
        "test perplexity",
        "beam-5 sentences/s",
    )
    for name in experiments("translation"):
        metrics = report(name)["metrics"]
        lines.append(
            f"| `{name}` | {trained(name, 'val_bleu', 'max', 2)} | "
            f"**{fmt(metrics['bleu'])}** | {fmt(metrics.get('bleu_lc'))} | {fmt(metrics['chrf'])} | "
            f"{fmt(metrics['ppl'])} | {fmt(metrics['decode_sentences_per_s'], 0)} |"
        )
    signature = report(experiments("translation")[0])["signature"]
    lines += ["", "sacreBLEU signatures: " + ", ".join(f"`{v}`" for v in signature.values()) + "."]
    return "\n".join(lines) + "\n"


def chatbot_table() -> str:
    lines = header(
        "experiment",
        "updates",
        "best val loss (at update)",
        "test perplexity",
        "**BLEU-1**",
        "**BLEU-2**",
        "corpus BLEU",
        "distinct-1",
        "**distinct-2**",
        "mean length",
        "top-10 share",
    )
    ref = None
    for name in experiments("chatbot"):
        m = report(name)["metrics"]
        lines.append(
            f"| `{name}` | {trained(name, 'val_loss', 'min', 3)} | "
            f"{fmt(m['ppl'], 1)} | **{fmt(m['bleu_1'], 3)}** | **{fmt(m['bleu_2'], 3)}** | "
            f"{fmt(m['corpus_bleu'])} | {fmt(m['distinct_1'], 3)} | **{fmt(m['distinct_2'], 3)}** | "
            f"{fmt(m['mean_length'], 1)} | {fmt(m['top10_share'], 3)} |"
        )
        ref = m
    if ref:
        lines.append(
            f"| the test references | | | | | | | {fmt(ref['ref_distinct_1'], 3)} | "
            f"{fmt(ref['ref_distinct_2'], 3)} | {fmt(ref['ref_mean_length'], 1)} | |"
        )
    return "\n".join(lines) + "\n"


def data_table() -> str:
    lines = header("task", "split", "raw", "kept", "dropped", "mean source / target tokens")
    for path in committed.files("metrics", "data_*.json"):
        stats = json.loads(committed.read_text(path))
        for split, s in stats.items():
            dropped = ", ".join(
                f"{k.removeprefix('dropped_').replace('_', ' ')} {fmt(v)}"
                for k, v in s.items()
                if k.startswith("dropped_") and v
            )
            src = s.get("src_tokens_mean", s.get("context_tokens_mean"))
            tgt = s.get("tgt_tokens_mean", s.get("response_tokens_mean"))
            lines.append(
                f"| {path.stem.removeprefix('data_')} | {split} | {fmt(s.get('raw'))} | {fmt(s['kept'])} | "
                f"{dropped or '—'} | {fmt(src, 1)} / {fmt(tgt, 1)} |"
            )
    return "\n".join(lines) + "\n"


def headline() -> str:
    """The README's table: each registered model's primary test figure."""
    lines = header("task", "experiment", "test")
    for name in experiments("translation"):
        m = report(name)["metrics"]
        lines.append(f"| translation en→de | `{name}` | BLEU **{fmt(m['bleu'])}**, chrF {fmt(m['chrf'])} |")
    for name in experiments("chatbot"):
        m = report(name)["metrics"]
        lines.append(
            f"| chatbot (DailyDialog) | `{name}` | BLEU-2 **{fmt(m['bleu_2'], 3)}**, "
            f"distinct-2 {fmt(m['distinct_2'], 3)}, perplexity {fmt(m['ppl'], 1)} |"
        )
    return "\n".join(lines) + "\n"


def recipe_rules() -> str:
    """The rules of `conf/recipes.yaml`, as `seqforge task add` applies them."""
    lines = header("task kind", "training pairs", "tokenizer", "model, by family")
    low = {}
    for kind, rules in load_recipes(ROOT / "conf").kinds.items():
        for rule in rules:
            size = f"≤ {rule.up_to:,}" if rule.up_to else f"more than {low.get(kind, 0):,}" if low.get(kind) else "any"
            low[kind] = rule.up_to or low.get(kind)
            tokenizer = ", ".join(f"`{k}: {v}`" for k, v in rule.tokenizer.items()) or "—"
            families = (
                "; ".join(
                    f"{f}: " + ", ".join(f"`{k}: {v}`" for k, v in values.items())
                    for f, values in rule.families.items()
                )
                or "the templates' values"
            )
            lines.append(f"| {kind} | {size} | {tokenizer} | {families} |")
    return "\n".join(lines) + "\n"
