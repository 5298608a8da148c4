"""A corpus summarised before it is recorded: read whole, as prepare will, into pairs or dialogues per split,
lengths by language, what the default cleaning would drop, and the held-out sets a one-file corpus gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from seqforge.corpora.registry import CorpusCfg
from seqforge.data.rows import read_corpus
from seqforge.data.splits import BATCH, split_masks
from seqforge.data.text import length_unit, lengths, normalize_texts
from seqforge.tasks.translation import DROPS, TranslationData, drop_codes


def _quantiles(values: np.ndarray) -> str:
    if not len(values):
        return "-"
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f"p50 {p50:.0f} · p90 {p90:.0f} · p99 {p99:.0f} · max {values.max()}"


def describe(corpus: CorpusCfg, root: Path, scratch: Path) -> list[str]:
    """Read the whole corpus (as prepare will) and summarise it: pairs, languages, lengths, drops."""
    rows = read_corpus(corpus, root, scratch)
    where = f"conf/corpora/{corpus.name}.yaml"
    counted = {c["values"]: c["counts"] for c in pc.value_counts(rows.column("split")).to_pylist()}
    splits = {s: counted[s] for s in ("train", "validation", "test", "all") if s in counted}
    lines = [
        f"{corpus.name}: {len(rows)} {'dialogues' if corpus.dialogue else 'pairs'} "
        f"({', '.join(f'{s} {n}' for s, n in splits.items())}), format {corpus.format}"
    ]
    if corpus.dialogue:
        turns = pc.list_value_length(rows.column("turns")).to_numpy(zero_copy_only=False)
        lines.append(
            f"  turns per dialogue: {_quantiles(turns)}; {int((turns < 2).sum())} with fewer than 2 "
            "turns would be dropped"
        )
        split_masks(rows, "turns", corpus.split, corpus.seed, where)
        return lines
    lines.append(f"  languages: {', '.join(corpus.languages)}")
    lens = {
        lang: np.concatenate(
            [lengths(normalize_texts(batch.column(lang)), length_unit(lang)) for batch in rows.to_batches(BATCH)]
        )
        for lang in corpus.languages
    }
    for lang in corpus.languages:
        lines.append(f"  {lang} length ({length_unit(lang)}): {_quantiles(lens[lang])}")
    a, b = corpus.languages[:2]
    rules = TranslationData()
    dropped = np.bincount(drop_codes(lens[a], lens[b], rules), minlength=len(DROPS))
    lines.append(
        f"  {a}-{b} with the default cleaning: would drop {dropped[1]} empty, {dropped[2]} longer than "
        f"{rules.max_tokens}, {dropped[3]} with a length ratio over {rules.max_ratio}"
    )
    masks = split_masks(rows, a, corpus.split, corpus.seed, where)
    if "all" in splits:
        lines.append(
            "  held out (by distinct source sentence, seed "
            f"{corpus.seed}): " + ", ".join(f"{s} {int(m.sum())} pairs" for s, m in masks.items())
        )
    return lines
