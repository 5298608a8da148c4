"""Metrics: sacreBLEU corpus scores for translation (also from statistics summed across workers)
and the dialogue metrics for chat (sentence BLEU-1/2 as dialogue papers compute it, corpus BLEU,
distinct-n, length, response concentration)."""

from __future__ import annotations

import warnings
from collections import Counter

from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a


def bleu_stats(hyps: list[str], refs: list[str], tokenize: str = "13a") -> list[float]:
    """[sys_len, ref_len, correct_1..4, total_1..4] of cased corpus BLEU (summable across shards)."""
    score = BLEU(tokenize=tokenize).corpus_score(hyps, [refs])
    return [score.sys_len, score.ref_len, *score.counts, *score.totals]


def bleu_from_stats(stats: list[float]) -> float:
    sys_len, ref_len, *rest = (int(round(x)) for x in stats)
    return BLEU.compute_bleu(rest[:4], rest[4:], sys_len, ref_len).score


def corpus_scores(hyps: list[str], refs: list[str], tokenize: str = "13a") -> dict:
    """Cased BLEU (with sacreBLEU tokenizer `tokenize`) and chrF on detokenized text, lowercased BLEU,
    and the sacreBLEU signatures."""
    bleu, bleu_lc, chrf = BLEU(tokenize=tokenize), BLEU(lowercase=True, tokenize=tokenize), CHRF()
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


TOKENIZE_13A = Tokenizer13a()


def _words(text: str) -> list[str]:
    """The tokens dialogue metrics count: sacreBLEU's 13a tokenization of the lowercased text."""
    return TOKENIZE_13A(text.lower()).split()


def _distinct(token_lists: list[list[str]], n: int) -> float:
    grams = [tuple(w[i : i + n]) for w in token_lists for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): distinct n-grams / all n-grams, over all `texts` together."""
    return _distinct([_words(t) for t in texts], n)


def sentence_bleu_n(hyps: list[str], refs: list[str], n: int) -> float:
    """Mean sentence-level BLEU-n in [0, ~1] as dialogue papers report it (PLATO, Bao et al. 2020).

    NLTK `sentence_bleu([ref], hyp, weights=(1/n,)*n, smoothing_function=SmoothingFunction().method7)`
    on 13a tokens of the lowercased text, averaged over responses. Method 7 (Chen & Cherry 2014,
    methods 4 + 5) averages each n-gram precision with its neighbours, so scores run higher than
    unsmoothed BLEU and can exceed the plain precision; read them next to distinct-n.
    """
    weights = tuple([1.0 / n] * n + [0.0] * (4 - n))
    from nltk.translate.bleu_score import (  # 1 s to import: only chatbots score with it
        SmoothingFunction,
        sentence_bleu,
    )

    smoothing = SmoothingFunction().method7
    with warnings.catch_warnings():  # NLTK warns on responses shorter than n tokens
        warnings.simplefilter("ignore")
        total = sum(
            sentence_bleu([_words(r)], _words(h), weights=weights, smoothing_function=smoothing)
            for h, r in zip(hyps, refs, strict=True)
        )
    return total / max(len(hyps), 1)


def dialogue_scores(hyps: list[str], refs: list[str]) -> dict:
    """Chat metrics of generated responses against the reference responses."""
    bleu = BLEU(lowercase=True)
    corpus = bleu.corpus_score(hyps, [refs])
    hyp_words, ref_words = [_words(h) for h in hyps], [_words(r) for r in refs]
    top10 = sum(c for _, c in Counter(" ".join(w) for w in hyp_words).most_common(10))
    return {
        "bleu_1": round(sentence_bleu_n(hyps, refs, 1), 4),
        "bleu_2": round(sentence_bleu_n(hyps, refs, 2), 4),
        "corpus_bleu": round(corpus.score, 2),
        "distinct_1": round(_distinct(hyp_words, 1), 4),
        "distinct_2": round(_distinct(hyp_words, 2), 4),
        "mean_length": round(sum(map(len, hyp_words)) / max(len(hyps), 1), 2),
        "top10_share": round(top10 / max(len(hyps), 1), 4),
        "ref_distinct_1": round(_distinct(ref_words, 1), 4),
        "ref_distinct_2": round(_distinct(ref_words, 2), 4),
        "ref_mean_length": round(sum(map(len, ref_words)) / max(len(refs), 1), 2),
        "signature": {
            "bleu_1_2": "nltk sentence_bleu, SmoothingFunction().method7, 13a tokens, lowercased, mean over responses",
            "corpus_bleu": str(bleu.get_signature()),
        },
    }
