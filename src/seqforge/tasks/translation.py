"""Translation: a parallel corpus, sacreBLEU BLEU/chrF with a tokenizer chosen for the target language."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from datasets import DatasetDict
from pydantic import Field, model_validator

from seqforge.config.base import Lang, base_lang
from seqforge.config.shared import ServeCfg
from seqforge.corpora.base import CorpusError
from seqforge.corpora.registry import CorpusCfg
from seqforge.data.arrow_files import write_arrow
from seqforge.data.splits import BATCH, split_masks, write_splits
from seqforge.data.text import length_unit, lengths, normalize, normalize_texts
from seqforge.tasks.base import DataCfg, TaskCfg, TaskKind, checked_texts
from seqforge.tasks.metrics import corpus_scores
from seqforge.tasks.registry import register_kind

# sacreBLEU's tokenizer per target language, and the one used where that needs a missing package
BLEU_TOKENIZERS = {"zh": "zh", "ja": "ja-mecab", "ko": "ko-mecab"}


@cache
def bleu_tokenize(lang: str, requested: str = "auto") -> str:
    """The sacreBLEU tokenizer for target language `lang`: 13a, zh, ja-mecab / ko-mecab where their
    packages are installed, `char` for the other unspaced scripts and as their fallback."""
    from sacrebleu.metrics import BLEU

    if requested != "auto":
        return requested
    name = BLEU_TOKENIZERS.get(base_lang(lang), "char" if length_unit(lang) == "chars" else "13a")
    try:  # the MeCab tokenizers import their package when built
        BLEU(tokenize=name)
    except (ImportError, SystemExit):
        return "char"
    return name


DROPS = ("", "dropped_empty", "dropped_too_long", "dropped_ratio")  # why a pair is dropped, by code
CLEANED = pa.schema(
    [
        ("split", pa.string()),
        ("source", pa.string()),
        ("target", pa.string()),
        ("src_len", pa.int32()),
        ("tgt_len", pa.int32()),
    ]
)


def clean(batch: pa.RecordBatch, task: TranslationTask) -> pa.RecordBatch:
    """Reader rows -> `split`, normalised `source` and `target`, and their lengths in the task's units."""
    cfg = task.data
    source = normalize_texts(batch.column(task.src_lang), cfg.normalization)
    target = normalize_texts(batch.column(task.tgt_lang), cfg.normalization)
    return pa.RecordBatch.from_arrays(
        [
            batch.column("split"),
            source,
            target,
            pa.array(lengths(source, length_unit(task.src_lang, cfg.length_unit))),
            pa.array(lengths(target, length_unit(task.tgt_lang, cfg.length_unit))),
        ],
        schema=CLEANED,
    )


def drop_codes(src_len: np.ndarray, tgt_len: np.ndarray, cfg: TranslationData) -> np.ndarray:
    """Index into :data:`DROPS` per pair: 0 keeps it; else empty, too long, or a length ratio too far off."""
    longest, shortest = np.maximum(src_len, tgt_len), np.minimum(src_len, tgt_len)
    return np.select(
        [shortest == 0, longest > cfg.max_tokens, longest > cfg.max_ratio * shortest], [1, 2, 3], 0
    ).astype(np.int8)


class TranslationData(DataCfg):
    """Which pairs `prepare` keeps."""

    max_tokens: int = Field(100, gt=0)  # drop pairs with a side longer than this (in `length_unit`)
    max_ratio: float = Field(4.0, ge=1.0)  # drop pairs whose length ratio exceeds this
    length_unit: Literal["auto", "words", "chars"] = "auto"  # auto: chars for unspaced scripts (zh, ja, th)


class TranslationTask(TaskCfg):
    """Machine translation from `src_lang` to `tgt_lang` on a parallel corpus."""

    kind: Literal["translation"]  # the task kind
    src_lang: Lang  # the source language (the corpus's column of that name)
    tgt_lang: Lang  # the target language
    data: TranslationData = TranslationData()
    scoring: ClassVar[frozenset[str]] = frozenset({"bleu_tokenize"})
    bleu_tokenize: str = "auto"  # sacreBLEU tokenizer; auto: chosen from tgt_lang (13a, zh, ja-mecab, ko-mecab, char)

    @model_validator(mode="after")
    def _different_langs(self) -> TranslationTask:
        if self.src_lang == self.tgt_lang:
            raise ValueError("src_lang and tgt_lang must differ")
        return self


@register_kind("translation")
class Translation(TaskKind):
    name = "translation"
    config = TranslationTask
    monitor = ("val_bleu", "max")
    primary_metric = "test_bleu"
    shown_metrics = ("bleu", "bleu_lc", "chrf", "ppl")
    input_column = "source"
    output_column = "translation"
    description = "Sentence translation. Input: a `source` column of sentences; output: `translation`."
    templates = ("gru_bahdanau", "transformer")

    def languages(
        self, corpus: CorpusCfg, src: str | None, tgt: str | None, keys: tuple[str, str] = ("--src", "--tgt")
    ) -> dict[str, str]:
        if corpus.dialogue:
            raise ValueError(f"--corpus: {corpus.name} is a dialogue corpus; translation needs a parallel one")
        if not src or not tgt:
            raise ValueError(
                f"--src/--tgt: translation needs both (corpus {corpus.name} has {', '.join(corpus.languages)})"
            )
        for option, lang in zip(keys, (src, tgt), strict=True):
            if lang not in corpus.languages:
                raise ValueError(
                    f"{option}: language {lang!r} is not in corpus {corpus.name} "
                    f"(its languages: {', '.join(corpus.languages)})"
                )
        if src == tgt:
            raise ValueError("--src/--tgt: the languages must differ")
        return {"src_lang": src, "tgt_lang": tgt}

    def pairs(
        self, rows: pa.Table, task: TranslationTask, corpus: CorpusCfg, scratch: Path
    ) -> tuple[DatasetDict, dict]:
        cleaned = write_arrow(scratch / "cleaned.arrow", (clean(b, task) for b in rows.to_batches(BATCH)), CLEANED)
        masks = split_masks(cleaned, "source", corpus.split, corpus.seed, f"conf/corpora/{corpus.name}.yaml")
        src_len, tgt_len = (cleaned.column(c).to_numpy() for c in ("src_len", "tgt_len"))
        codes = drop_codes(src_len, tgt_len, task.data)
        keep, stats = {}, {}
        for split in ("train", "validation", "test"):
            mask = masks[split]
            counts = {"raw": int(mask.sum())}
            counts.update(
                {DROPS[c]: int(n) for c, n in enumerate(np.bincount(codes[mask], minlength=len(DROPS))) if c and n}
            )
            keep[split] = mask & (codes == 0)
            cap = task.data.max_train_pairs if split == "train" else task.data.max_eval_pairs
            if cap is not None and keep[split].sum() > cap:
                counts["dropped_cap"] = int(keep[split].sum()) - cap
                keep[split] &= np.cumsum(keep[split]) <= cap
            kept = int(keep[split].sum())
            if not kept:
                raise CorpusError(f"corpus {corpus.name}: {split}: no usable pairs after cleaning ({counts})")
            stats[split] = {
                **counts,
                "kept": kept,
                "src_tokens_mean": round(float(src_len[keep[split]].mean()), 2),
                "tgt_tokens_mean": round(float(tgt_len[keep[split]].mean()), 2),
                "src_tokens_min": int(src_len[keep[split]].min()),
                "src_tokens_max": int(src_len[keep[split]].max()),
            }
        return write_splits(cleaned, keep, ["source", "target"], scratch), stats

    def validation_bleu(self, task: TranslationTask) -> str:
        return bleu_tokenize(task.tgt_lang, task.bleu_tokenize)

    def scores(self, hyps: list[str], refs: list[str], task: dict) -> dict:
        return corpus_scores(hyps, refs, bleu_tokenize(task["tgt_lang"], task.get("bleu_tokenize", "auto")))

    def requests(self, values: list, limits: ServeCfg) -> list:
        return checked_texts(values, limits, "source")

    def sources(self, requests: list, meta: dict) -> list[str]:
        return [normalize(s, meta["task"]["data"]["normalization"]) for s in requests]

    def example(self) -> list[Any]:
        return ["A man is riding a bike."]
