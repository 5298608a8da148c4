"""Metrics: sacreBLEU corpus scores for translation (also from statistics summed across workers)
and the dialogue metrics for chat (sentence BLEU-1/2, distinct-n, length, response concentration)."""

from __future__ import annotations

from collections import Counter

from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a


def bleu_stats(hyps: list[str], refs: list[str]) -> list[float]:
    """[sys_len, ref_len, correct_1..4, total_1..4] of cased corpus BLEU (summable across shards)."""
    score = BLEU().corpus_score(hyps, [refs])
    return [score.sys_len, score.ref_len, *score.counts, *score.totals]


def bleu_from_stats(stats: list[float]) -> float:
    sys_len, ref_len, *rest = (int(round(x)) for x in stats)
    return BLEU.compute_bleu(rest[:4], rest[4:], sys_len, ref_len).score


def corpus_scores(hyps: list[str], refs: list[str]) -> dict:
    """Cased BLEU and chrF on detokenized text, lowercased BLEU, and the sacreBLEU signatures."""
    bleu, bleu_lc, chrf = BLEU(), BLEU(lowercase=True), CHRF()
    b, lc, c = bleu.corpus_score(hyps, [refs]), bleu_lc.corpus_score(hyps, [refs]), chrf.corpus_score(hyps, [refs])
    return {
        "bleu": round(b.score, 2),
        "bleu_lc": round(lc.score, 2),
        "chrf": round(c.score, 2),
        "bleu_bp": round(b.bp, 3),
        "hyp_ref_len_ratio": round(b.sys_len / max(b.ref_len, 1), 3),
        "signature": {
            "bleu": str(bleu.get_signature()),
            "bleu_lc": str(bleu_lc.get_signature()),
            "chrf": str(chrf.get_signature()),
        },
    }


def _words(text: str, tokenize=Tokenizer13a()) -> list[str]:
    """The tokens dialogue metrics count: sacreBLEU's 13a tokenization of the lowercased text."""
    return tokenize(text.lower()).split()


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): distinct n-grams / all n-grams, over all `texts` together."""
    grams = [tuple(w[i : i + n]) for w in map(_words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def sentence_bleu_n(hyps: list[str], refs: list[str], n: int) -> tuple[float, str]:
    """Mean sentence-level BLEU-n in [0, 1] (uniform weights up to order n) and its signature.

    sacreBLEU `BLEU(max_ngram_order=n, lowercase=True, tokenize="13a", smooth_method="exp",
    effective_order=True).sentence_score`, averaged over the responses.
    """
    bleu = BLEU(max_ngram_order=n, lowercase=True, tokenize="13a", smooth_method="exp", effective_order=True)
    total = sum(bleu.sentence_score(h, [r]).score for h, r in zip(hyps, refs, strict=True))
    return total / max(len(hyps), 1) / 100, str(bleu.get_signature())


def dialogue_scores(hyps: list[str], refs: list[str]) -> dict:
    """Chat metrics of generated responses against the reference responses."""
    bleu_1, sig_1 = sentence_bleu_n(hyps, refs, 1)
    bleu_2, sig_2 = sentence_bleu_n(hyps, refs, 2)
    top10 = sum(c for _, c in Counter(" ".join(_words(h)) for h in hyps).most_common(10))
    return {
        "bleu_1": round(bleu_1, 4),
        "bleu_2": round(bleu_2, 4),
        "distinct_1": round(distinct_n(hyps, 1), 4),
        "distinct_2": round(distinct_n(hyps, 2), 4),
        "mean_length": round(sum(len(_words(h)) for h in hyps) / max(len(hyps), 1), 2),
        "top10_share": round(top10 / max(len(hyps), 1), 4),
        "ref_distinct_1": round(distinct_n(refs, 1), 4),
        "ref_distinct_2": round(distinct_n(refs, 2), 4),
        "ref_mean_length": round(sum(len(_words(r)) for r in refs) / max(len(refs), 1), 2),
        "signature": {"bleu_1": sig_1, "bleu_2": sig_2},
    }
