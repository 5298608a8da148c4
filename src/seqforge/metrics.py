"""Corpus metrics with sacreBLEU, including BLEU from sufficient statistics summed across workers."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF


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
