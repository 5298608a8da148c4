"""Translation: a parallel corpus, sacreBLEU BLEU/chrF with a tokenizer chosen for the target language."""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

from datasets import Dataset, DatasetDict

from seqforge.config import CorpusCfg, ServeCfg, TranslationTask, base_lang
from seqforge.data.text import length, length_unit, normalize
from seqforge.tasks.base import TaskKind, checked_texts

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


def clean(batch: dict, src: str, tgt: str, task: TranslationTask) -> dict:
    """Normalise one batch of pairs; `drop` says why a pair is dropped (empty, too long, ratio) or is empty."""
    cfg = task.data
    src_unit, tgt_unit = length_unit(task.src_lang, cfg.length_unit), length_unit(task.tgt_lang, cfg.length_unit)
    out: dict[str, list] = {"source": [], "target": [], "drop": []}
    for s, t in zip(batch[src], batch[tgt], strict=True):
        s, t = normalize(s, cfg.normalization), normalize(t, cfg.normalization)
        n_src, n_tgt = length(s, src_unit), length(t, tgt_unit)
        if not n_src or not n_tgt:
            reason = "dropped_empty"
        elif max(n_src, n_tgt) > cfg.max_tokens:
            reason = "dropped_too_long"
        elif max(n_src, n_tgt) / min(n_src, n_tgt) > cfg.max_ratio:
            reason = "dropped_ratio"
        else:
            reason = ""
        out["source"].append(s)
        out["target"].append(t)
        out["drop"].append(reason)
    return out


def _mean_length(ds: Dataset, column: str, unit: str) -> float:
    """Mean length of a normalised text column (single spaces), computed in Arrow."""
    import pyarrow.compute as pc

    text = ds.with_format("arrow")[column]
    spaces = pc.count_substring(text, " ")
    lengths = pc.subtract(pc.utf8_length(text), spaces) if unit == "chars" else pc.add(spaces, 1)
    return round(pc.mean(lengths).as_py() or 0.0, 2)


class Translation(TaskKind):
    name = "translation"
    monitor = ("val_bleu", "max")
    primary_metric = "test_bleu"
    shown_metrics = ("bleu", "bleu_lc", "chrf", "ppl")
    input_column = "source"
    output_column = "translation"
    description = "Sentence translation. Input: a `source` column of sentences; output: `translation`."
    templates = ("gru_bahdanau", "transformer")

    def languages(self, corpus: CorpusCfg, src: str | None, tgt: str | None) -> dict[str, str]:
        if corpus.dialogue:
            raise ValueError(f"--corpus: {corpus.name} is a dialogue corpus; translation needs a parallel one")
        if not src or not tgt:
            raise ValueError(f"--src/--tgt: translation needs both (corpus {corpus.name} has "
                             f"{', '.join(corpus.languages)})")
        for option, lang in (("--src", src), ("--tgt", tgt)):
            if lang not in corpus.languages:
                raise ValueError(f"{option}: language {lang!r} is not in corpus {corpus.name} "
                                 f"(its languages: {', '.join(corpus.languages)})")
        if src == tgt:
            raise ValueError("--src/--tgt: the languages must differ")
        return {"src_lang": src, "tgt_lang": tgt}

    def pairs(self, rows: Dataset, task: TranslationTask, corpus: CorpusCfg, num_proc: int) -> tuple[DatasetDict, dict]:
        import pyarrow.compute as pc

        from seqforge.data.pairs import by_split
        from seqforge.data.readers import CorpusError

        cleaned = rows.map(clean, batched=True, batch_size=5000, num_proc=num_proc if len(rows) > 50_000 else None,
                           remove_columns=[c for c in rows.column_names if c != "split"],
                           fn_kwargs={"src": task.src_lang, "tgt": task.tgt_lang, "task": task})
        splits = by_split(cleaned, "source", corpus.split, corpus.seed, f"conf/corpora/{corpus.name}.yaml")
        out, stats = {}, {}
        for split, ds in splits.items():
            counts = Counter({"raw": len(ds)})
            drops = pc.value_counts(ds.with_format("arrow")["drop"]).to_pylist()  # columnar, not row by row
            counts.update({d["values"]: d["counts"] for d in drops if d["values"]})
            ds = ds.filter(lambda drop: [not d for d in drop], input_columns="drop", batched=True, batch_size=10_000)
            cap = task.data.max_train_pairs if split == "train" else task.data.max_eval_pairs
            if cap is not None and len(ds) > cap:
                counts["dropped_cap"] = len(ds) - cap
                ds = ds.select(range(cap))
            if not len(ds):
                raise CorpusError(f"corpus {corpus.name}: {split}: no usable pairs after cleaning ({dict(counts)})")
            out[split] = ds.select_columns(["source", "target"])
            unit = task.data.length_unit
            stats[split] = {**counts, "kept": len(ds),
                            "src_tokens_mean": _mean_length(out[split], "source", length_unit(task.src_lang, unit)),
                            "tgt_tokens_mean": _mean_length(out[split], "target", length_unit(task.tgt_lang, unit))}
        return DatasetDict({s: out[s] for s in ("train", "validation", "test")}), {s: stats[s] for s in ("train", "validation", "test")}

    def scores(self, hyps: list[str], refs: list[str], task: dict) -> dict:
        from seqforge.metrics import corpus_scores

        return corpus_scores(hyps, refs, bleu_tokenize(task["tgt_lang"], task.get("bleu_tokenize", "auto")))

    def requests(self, values: list, limits: ServeCfg) -> list:
        return checked_texts(values, limits, "source")

    def sources(self, requests: list, meta: dict) -> list[str]:
        return [normalize(s, meta["task"]["data"]["normalization"]) for s in requests]

    def example(self) -> list[Any]:
        return ["A man is riding a bike."]
