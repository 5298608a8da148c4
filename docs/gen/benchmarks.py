"""Benchmark tables from the JSON each bench writes and the repository keeps: `reports/recipes/` (bench.recipes),
`reports/peer/` (bench.peer_opennmt), `reports/inference/` (bench.inference), `reports/serving/` and
`reports/soak/` (bench.serve_load), `reports/precision/` (bench.precision), `reports/placement/` (bench.placement),
`reports/gpu_check/` (bench.gpu_check). Each table
is one file's figures; the file's name is in the table's caption."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.gpu_check import table as gpu_check_table
from bench.precision import GROUPS
from docs.gen import committed
from docs.gen.markdown import header
from docs.gen.results import ROOT, fmt

REPORTS = ROOT / "reports"


def _json(path: Path):
    return json.loads(committed.read_text(path))


def _caption(path: Path) -> str:
    return f"From `{path.relative_to(ROOT)}`."


def recipes() -> str:
    lines = []
    for path in committed.files("reports/recipes", "*.json"):
        lines += [
            f"**{path.stem}** — {_caption(path)}",
            "",
            *header(
                "cell",
                "parameters",
                "updates",
                "trained for",
                "best val BLEU (at update)",
                "last val BLEU",
                "test BLEU",
                "test chrF",
                "ended",
            ),
        ]
        for c in _json(path):
            end = "still improving" if c.get("undertrained") else "—"
            lines.append(
                f"| `{c['experiment']}` | {fmt(c['parameters'])} | {fmt(c['updates'])} | {c['trained_for']} | "
                f"{fmt(c['best_val_bleu'])} ({fmt(c['best_at_update'])}) | {fmt(c['last_val_bleu'])} | "
                f"{fmt(c['test_bleu'])} | {fmt(c['test_chrf'])} | {end} |"
            )
        lines.append("")
    return "\n".join(lines)


def peer_speed() -> str:
    lines = []
    for path in committed.files("reports/peer", "speed-*.json"):
        d = _json(path)
        ours = d.get("seqforge_training")  # written since the runs placed one worker per node
        setting = (
            f" seqforge trained with {ours['workers']} Ray Train worker(s) × {ours['threads_per_worker']} threads "
            f"in {ours['precision']}; OpenNMT-py in one process, 2 threads, fp32."
            if ours
            else " seqforge trained with 2 Ray Train workers × 1 thread in fp32."
        )
        lines += [
            f"{fmt(d['steps'])} updates per toolkit, then beam-5 decoding of the test split; "
            f"torch {d['torch']}, {d['cpus']} CPUs.{setting} {_caption(path)}",
            "",
        ]
        trained = {k: v for k, v in d["training"].items() if v}
        if trained:
            lines += header("toolkit", "train source tok/s", "train target tok/s", "wall s (same updates)")
            for name, runs in trained.items():
                mean = {
                    k: statistics.fmean(r[k] for r in runs)
                    for k in runs[0]
                    if k in ("train_src", "train_tgt", "wall_s")
                }
                lines.append(
                    f"| {name} | {fmt(mean.get('train_src'), 0)} | {fmt(mean.get('train_tgt'), 0)} | "
                    f"{fmt(mean.get('wall_s'), 1)} |"
                )
            lines.append("")
        decoded = d["decoding"]
        base = statistics.fmean(r["fixed_tok_s"] for r in next(iter(decoded.values())))
        lines += header(
            "toolkit, precision",
            "target tok/s, own lengths",
            f"tok/s, every output {d['fixed_tokens']} tokens",
            "ms per decoder step",
            f"÷ {next(iter(decoded))}",
        )
        for name, runs in decoded.items():
            fixed = statistics.fmean(r["fixed_tok_s"] for r in runs)
            lines.append(
                f"| {name} | {fmt(statistics.fmean(r['tgt_tok_s'] for r in runs), 0)} | {fmt(fixed, 0)} | "
                f"{fmt(statistics.fmean(r['step_ms'] for r in runs), 1)} | {fixed / base:.2f}× |"
            )
        lines += ["", f"Rounds averaged: {len(next(iter(decoded.values())))}.", ""]
    return "\n".join(lines)


def time_to_bleu() -> str:
    lines = []
    for path in committed.files("reports/peer", "time_to_bleu-*.json"):
        d = _json(path)
        onmt = d["opennmt"]["points"][-1]
        lines += [
            f"Each toolkit trains for the minutes given, then beam-5 decodes the test split. {_caption(path)}",
            "",
            *header("toolkit, recipe", "budget", "trained", "updates", "test BLEU", "lowercased", "chrF"),
            f"| OpenNMT-py, peer LSTM | {fmt(d['minutes'], 0)} min | {onmt['minutes']} min (last checkpoint) | "
            f"{fmt(onmt['update'])} | {fmt(onmt['bleu'])} | {fmt(onmt['bleu_lc'])} | {fmt(onmt['chrf'])} |",
        ]
        for run in d["seqforge"]:
            lines.append(
                f"| seqforge `gru_bahdanau` | {fmt(run['budget_minutes'], 0)} min | {run['trained_minutes']} min "
                f"| {fmt(run['updates'])} | {fmt(run['test_bleu'])} | {fmt(run['test_bleu_lc'])} | "
                f"{fmt(run['test_chrf'])} |"
            )
        lines += [
            "",
            "Along the way — OpenNMT-py's checkpoints (test, beam 5): "
            + ", ".join(f"{fmt(p['bleu'])} at {p['minutes']} min" for p in d["opennmt"]["points"])
            + "; seqforge's evaluations "
            "(validation, greedy) of its longest run: "
            + ", ".join(f"{fmt(p['bleu'])} at {p['minutes']} min" for p in d["seqforge"][-1]["points"])
            + ".",
            "",
        ]
    return "\n".join(lines)


def precision() -> str:
    lines = []
    for path in committed.files("reports/precision", "*.json"):
        d = _json(path)
        groups = [*GROUPS, "elementwise, other"]
        cpu = "native bf16" if d["native_bf16"] else "bf16 emulated"
        lines += [
            f"{d['steps']} training steps of 120 Multi30k sentences per cell, {d['threads']} threads, {cpu}; the "
            f"machine's GEMM peak fp32 {fmt(d['peak']['fp32'], 0)}, bf16 {fmt(d['peak']['bf16'], 0)} GFLOP/s. "
            f"{_caption(path)}",
            "",
            *header("experiment", "precision", "step ms", "÷ fp32", "GFLOP/step", "GFLOP/s", "of peak", *groups),
        ]
        for name, by_precision in d["rows"].items():
            fp32 = by_precision["fp32"]["step_ms"]
            for precision, r in by_precision.items():
                peak = d["peak"]["fp32" if precision == "fp32" else "bf16"]
                lines.append(
                    f"| `{name}` | {precision} | {fmt(r['step_ms'], 0)} | {fp32 / r['step_ms']:.2f}× | "
                    f"{fmt(r['gflop_per_step'], 1)} | {fmt(r['gflop_s'], 0)} | {r['gflop_s'] / peak:.0%} | "
                    + " | ".join(f"{r['time_shares'].get(g, 0):.0%}" for g in groups)
                    + " |"
                )
        lines.append("")
    return "\n".join(lines)


def placement() -> str:
    lines = []
    for path in committed.files("reports/placement", "*.json"):
        d = _json(path)
        lines += [
            f"{d['steps']} updates per run, {d['precision']}, {d['cpus']} CPUs, means of "
            f"{len(next(iter(next(iter(d['runs'].values())).values())))} rounds. {_caption(path)}",
            "",
            *header("experiment", "workers × threads", "source + target tok/s", "wall s", "÷ 2 × 1"),
        ]
        for name, by_place in d["runs"].items():
            tok_s = {p: statistics.fmean(r["train_src"] + r["train_tgt"] for r in rs) for p, rs in by_place.items()}
            for place, rs in by_place.items():
                workers = int(place[0])
                lines.append(
                    f"| `{name}` | {workers} × {2 // workers} | {fmt(tok_s[place], 0)} | "
                    f"{fmt(statistics.fmean(r['wall_s'] for r in rs), 1)} | {tok_s[place] / tok_s['2x1']:.2f}× |"
                )
        lines.append("")
    return "\n".join(lines)


def inference() -> str:
    lines = []
    for path in committed.files("reports/inference", "*.json"):
        d = _json(path)
        pytorch = {r["threads"]: r["tokens_per_s"] for r in d["rows"] if r["backend"] == "pytorch"}
        lines += [
            f"**`{d['model']}`** (`{d['experiment']}`): {fmt(d['sentences'])} test sentences, "
            f"{d['decode']['strategy']} {d['decode']['beam_size']}, batches of {d['decode']['batch_size']}. "
            f"{_caption(path)}",
            "",
            *header(
                "backend",
                "threads",
                "batch tok/s",
                "÷ PyTorch",
                "sentences/s",
                "batch-1 p50 / p99 ms",
                "test BLEU",
                "chrF",
                "same output as PyTorch",
            ),
        ]
        for r in d["rows"]:
            ratio = r["tokens_per_s"] / pytorch[r["threads"]] if r["threads"] in pytorch else None
            lines.append(
                f"| {r['backend']} | {r['threads']} | {fmt(r['tokens_per_s'], 0)} | "
                f"{f'{ratio:.2f}×' if ratio else '—'} | {fmt(r['sentences_per_s'], 1)} | "
                f"{fmt(r['p50_ms'], 1)} / {fmt(r['p99_ms'], 1)} | {fmt(r['bleu'])} | {fmt(r['chrf'])} | "
                f"{r['agree']:.1%} |"
            )
        lines.append("")
    return "\n".join(lines)


def serving() -> str:
    lines = []
    for path in committed.files("reports/serving", "*.json"):
        d = _json(path)
        mlflow = {r["clients"]: r["requests_per_s"] for r in d["runs"] if r["engine"] == "mlflow"}
        lines += [
            f"**`{d['model']}`** ({path.stem}): {fmt(d['seconds'], 0)} s per row, 1 to {d['rows']} sentences a "
            f"request, {d['invalid']:.0%} of the requests invalid; mlflow: {d['workers']} server workers of one "
            f"thread; ray: {_serve_layout(d['serve'])}. {_caption(path)}",
            "",
            *header("engine", "clients", "req/s", "÷ mlflow", "p50 / p99 ms", "400 p50 ms", "unexpected", "RSS MiB"),
        ]
        for r in d["runs"]:
            ratio = f"{r['requests_per_s'] / mlflow[r['clients']]:.2f}×" if r["clients"] in mlflow else "—"
            lines.append(
                f"| {r['engine']} | {r['clients']} | {fmt(r['requests_per_s'], 1)} | {ratio} | "
                f"{fmt(r['p50_valid_ms'], 0)} / {fmt(r['p99_valid_ms'], 0)} | {fmt(r['p50_invalid_ms'], 0)} | "
                f"{r['unexpected']} | {fmt(r['rss_start_mib'], 0)} → {fmt(r['rss_end_mib'], 0)} |"
            )
        lines.append("")
    return "\n".join(lines)


def soak() -> str:
    """Each committed soak (`bench.serve_load --soak`): one row per request kind, then how its RSS went."""
    lines = []
    for path in committed.files("reports/soak", "*.json"):
        d = _json(path)
        for r in d["runs"]:
            layout = _serve_layout(d["serve"]) if r["engine"] == "ray" else f"{d['workers']} server workers"
            lines += [
                f"**`{d['model']}` on {r['engine']}** ({layout}): {r['clients']} clients for "
                f"{fmt(d['seconds'], 0)} s, {d['invalid']:.0%} of the requests invalid; "
                f"{r['requests']:,} requests ({fmt(r['requests_per_s'], 1)}/s), {r['unexpected']} unexpected, "
                f"valid p50 / p99 {fmt(r['p50_valid_ms'], 0)} / {fmt(r['p99_valid_ms'], 0)} ms. {_caption(path)}",
                "",
                *header("request", "requests", "answered as expected", "expected status"),
            ]
            for name, n in r["by_request"].items():
                lines.append(
                    f"| {name} | {n['requests']:,} | {n['as_expected']:,} | {200 if name == 'valid' else 400} |"
                )
            lines += [
                "",
                f"The server's RSS (its processes and the replicas): {_rss_course(r['rss_mib'], d['rss_every'])}; "
                f"growth {100 * r['rss_growth']:.1f} %, the most {fmt(r['rss_max_mib'], 0)} MiB.",
                "",
            ]
    return "\n".join(lines)


def _rss_course(samples: list[float], every: float) -> str:
    """RSS samples taken every `every` seconds, at the start, after a minute, after five and at the end."""
    marks = {round(60 / every): "after a minute", round(300 / every): "after five"}
    marks = {0: "at the start"} | {i: when for i, when in marks.items() if 0 < i < len(samples) - 1}
    said = [f"{fmt(samples[i], 0)} MiB {when}" for i, when in marks.items()]
    return ", ".join([*said, f"{fmt(samples[-1], 0)} MiB at the end"])


def _serve_layout(serve: dict | None) -> str:
    if serve is None:
        return "not run"
    return (
        f"{serve['replicas']}{f'-{m}' if (m := serve.get('max_replicas')) else ''} replica(s) of "
        f"{serve['cpus_per_replica']:g} CPU, batches of up to "
        f"{serve['max_batch_size']} requests within {serve['batch_wait_ms']:g} ms"
    )


def chaos() -> str:
    """Each committed fault campaign (`bench.chaos --json`): one row per faulted run, then its totals."""
    lines = []
    for path in committed.files("reports/chaos", "*.json"):
        d = _json(path)
        lines += [
            f"**seed {d['seed']}**{_drawn_from(d)}: {d['updates']} updates per run, the fault-free run "
            f"{fmt(d['reference_s'], 0)} s. "
            f"Faults injected {d['injected']}, survived {d['survived']}, lost {d['lost']}. {_caption(path)}",
            "",
            *header("run", "fault", "moment", "invariants", "weights against the fault-free run"),
        ]
        for r in d["runs"]:  # a run the fault missed is not in the report: its number says where it was
            held = "held" if not r["broken"] else "broken: " + "; ".join(r["broken"])
            delta = r["weights_max_diff"]
            weights = "bit for bit equal" if delta == 0 else f"differ by at most {delta:.1e}"
            lines.append(f"| {r['run']} | {r['kind']} | {r['moment']} | {held} | {weights} |")
        lines.append("")
    return "\n".join(lines)


def _drawn_from(campaign: dict) -> str:
    """The kinds a campaign drew from, where `--kinds` chose them."""
    return f" ({', '.join(campaign['kinds'])} only)" if "kinds" in campaign else ""


def gpu_check() -> str:
    lines = []
    for path in committed.files("reports/gpu_check", "*.json"):
        for d in _json(path).get("runs") or [_json(path)]:  # the first check's file holds its runs in a list
            lines += _gpu_run(path, d)
    return "\n".join(lines)


def _gpu_run(path: Path, run: dict) -> list[str]:
    """One run of the check, as the check itself writes it (`bench.gpu_check.table`), under its file's name."""
    command = f" (`{run['command']}`)" if "command" in run else ""
    return [f"**{path.stem}**{command}. {_caption(path)}", "", gpu_check_table(run)]
