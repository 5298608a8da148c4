"""Search over a model's `encode` / `decode_step` / `reorder_state`: greedy, sampling and beam search.

Finished sentences leave the batch, so the last steps of a batch cost only what is still being
written; output lengths are capped at what the model can represent (`max_decode_steps`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from seqforge.data.tokenizer import BOS, EOS, PAD
from seqforge.models.base import Seq2Seq


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # without BOS/EOS
    score: float  # length-normalised log-probability


NEVER = [PAD, BOS]  # never generated (PAD only fills finished beams)


def max_lengths(src_lens: Tensor, ratio: float, offset: int) -> Tensor:
    """Per-sentence cap on generated tokens (EOS included)."""
    return (src_lens.float() * ratio).long() + offset


def _caps(model: Seq2Seq, max_len: Tensor, device: torch.device) -> Tensor:
    """`max_len` on `device`, clamped to the longest output the model can represent."""
    limit = max_len.to(device)
    return limit if model.max_decode_steps is None else limit.clamp(max=model.max_decode_steps)


def _strip(row: list[int]) -> list[int]:
    out = []
    for tok in row:
        if tok in (EOS, PAD):
            break
        out.append(tok)
    return out


def ngram_bans(history: Tensor, n: int, vocab: int) -> Tensor:
    """(N, vocab) mask of the tokens that would complete an n-gram already in each row of `history`
    (N, t): n-gram blocking, computed for every row at once on the history's device."""
    rows, t = history.shape
    banned = torch.zeros(rows, vocab + 1, dtype=torch.bool, device=history.device)
    if n <= 0 or t < n:
        return banned[:, :vocab]
    windows = history.unfold(1, n, 1)  # (N, t - n + 1, n): every n-gram so far
    prefix = history[:, t - n + 1 :].unsqueeze(1)  # the last n - 1 tokens
    seen = (windows[:, :, : n - 1] == prefix).all(-1)  # n-grams that start like the next one would
    banned.scatter_(1, windows[:, :, -1].masked_fill(~seen, vocab), True)  # column `vocab`: no ban
    return banned[:, :vocab]


@dataclass(frozen=True)
class Sampler:
    """Top-k / nucleus (top-p) sampling with temperature; `generator` (on the model's device) fixes
    the random stream."""

    generator: torch.Generator
    top_k: int = 0
    top_p: float = 1.0
    temperature: float = 1.0

    def __call__(self, logits: Tensor) -> Tensor:
        logits = logits / self.temperature
        if self.top_k:
            kth = logits.topk(min(self.top_k, logits.size(-1)), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            sorted_logits, order = logits.sort(dim=-1, descending=True)
            probs = sorted_logits.softmax(-1)
            outside = probs.cumsum(-1) - probs > self.top_p  # the most likely token always stays
            logits = logits.scatter(-1, order, sorted_logits.masked_fill(outside, float("-inf")))
        probs = logits.softmax(-1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1)


def _restrict(logits: Tensor, step: int, min_length: int, no_repeat_ngram: int, history: Tensor | None) -> Tensor:
    """Logits with what every search rules out at -inf: PAD/BOS always, EOS before `min_length`, n-gram
    blocking over `history`, the (N, step) tokens so far (None when blocking is off). Ruled out before
    normalising, as CTranslate2 does, so the tokens left share all the probability."""
    logits[:, NEVER] = float("-inf")
    if step < min_length:
        logits[:, EOS] = float("-inf")
    if no_repeat_ngram:
        logits.masked_fill_(ngram_bans(history, no_repeat_ngram, logits.size(-1)), float("-inf"))
    return logits


@torch.no_grad()
def generate(
    model: Seq2Seq,
    src: Tensor,
    src_lens: Tensor,
    max_len: Tensor,
    sampler: Sampler | None = None,
    no_repeat_ngram: int = 0,
    min_length: int = 0,
) -> list[list[int]]:
    """Left-to-right decoding, one hypothesis per source: arg-max (greedy) or `sampler`'s draw."""
    state = model.encode(src, src_lens)
    limit = _caps(model, max_len, src.device)
    rows = torch.arange(src.size(0), device=src.device)  # each live row's sentence
    out = src.new_full((src.size(0), int(limit.max())), PAD)
    prev = src.new_full((src.size(0),), BOS)
    for t in range(out.size(1)):
        logits, state = model.decode_step(prev, state)
        logits = _restrict(logits, t, min_length, no_repeat_ngram, out[rows, :t] if no_repeat_ngram else None)
        prev = sampler(logits) if sampler is not None else logits.argmax(-1)
        prev = prev.masked_fill(t + 1 >= limit, EOS)
        out[rows, t] = prev
        ended = prev == EOS
        if ended.any():  # finished sentences leave the batch
            live = (~ended).nonzero().squeeze(1)
            if live.numel() == 0:
                break
            state = model.reorder_state(state, live, live)
            rows, prev, limit = rows[live], prev[live], limit[live]
    return [_strip(row) for row in out.tolist()]


def greedy(model: Seq2Seq, src: Tensor, src_lens: Tensor, max_len: Tensor) -> list[list[int]]:
    """Arg-max decoding; returns token ids per sentence."""
    return generate(model, src, src_lens, max_len)


def length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT length penalty ((5 + |y|) / 6) ** alpha."""
    return ((5.0 + lengths.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_lens: Tensor,
    max_len: Tensor,
    beam_size: int,
    alpha: float = 1.0,
    n_best: int = 1,
    no_repeat_ngram: int = 0,
    min_length: int = 0,
    patience: float = 1.0,
) -> list[list[Hypothesis]]:
    """Batched beam search, the search of CTranslate2 and fairseq. Each step takes a sentence's 2k best
    continuations: those among its first k that end (with EOS, or at the sentence's last step) are finished
    hypotheses, and the best k that do not end stay live, so the beam keeps k live hypotheses. A sentence
    leaves the batch once round(k × `patience`) hypotheses have finished or at its last step; without a length
    penalty, once a step's best continuation has ended and n_best have finished (nothing live can outscore it).

    Returns, per sentence, the `n_best` finished hypotheses ranked by log-probability over GNMT's length
    penalty (length: the tokens generated, EOS included). With `no_repeat_ngram` = n, no hypothesis
    contains the same n-gram twice; none ends before `min_length` tokens unless its length cap forces it.
    A sentence's last step generates token `cap` - 1, so outputs stay within the cap, EOS included.
    """
    k, device = beam_size, src.device
    state = model.encode(src, src_lens)
    state = model.reorder_state(state, torch.arange(src.size(0), device=device).repeat_interleave(k))
    sentences = torch.arange(src.size(0), device=device)  # each live sentence's index in `src`
    last = (_caps(model, max_len, device) - 2).clamp(min=0)  # each sentence's last step
    enough = math.floor(k * patience + 0.5)  # finished hypotheses that end a sentence (C++'s std::round, as CT2)
    scores = torch.full((src.size(0), k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # only the first beam is alive before the first step
    tokens = src.new_full((src.size(0) * k, 1), BOS)
    found = torch.zeros(src.size(0), dtype=torch.long, device=device)  # finished hypotheses per sentence
    best_ended = torch.zeros(src.size(0), dtype=torch.bool, device=device)  # a step's best continuation ended
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(src.size(0))]  # (score, tokens)
    for t in range(int(last.max()) + 1):
        logits, state = model.decode_step(tokens[:, -1], state)
        width = min(2 * k, logits.size(1))
        logp = _restrict(
            logits, t, min_length, no_repeat_ngram, tokens[:, 1:] if no_repeat_ngram else None
        ).log_softmax(-1)
        if no_repeat_ngram:  # a row whose every token is blocked normalises to NaN: it stays ruled out
            logp.masked_fill_(logp.isnan(), float("-inf"))
        # a hypothesis's 2k best continuations hold its sentence's 2k best: top-k over k × 2k, not k × V
        top, top_tok = logp.topk(width, dim=1)
        cand, flat = (scores.view(-1, 1) + top).view(-1, k * width).topk(2 * k, dim=1)  # (B, 2k), best first
        cand_tok = top_tok.view(-1, k * width).gather(1, flat)
        origin = torch.arange(cand.size(0), device=device).unsqueeze(1) * k + flat // width  # rows they extend
        is_eos = cand_tok == EOS
        ending = is_eos[:, :k] | (t >= last)[:, None]
        if ending.any():
            b, j = ending.nonzero().unbind(1)
            histories = torch.cat([tokens[origin[b, j], 1:], cand_tok[b, j, None]], dim=1).tolist()
            for sentence, score, history in zip(sentences[b].tolist(), cand[b, j].tolist(), histories, strict=True):
                finished[sentence].append((score, history))
            found = found + ending.sum(1)
        best_ended |= is_eos[:, 0]
        done = (best_ended & (found >= n_best) if alpha == 0 else found >= enough) | (t >= last)
        keep = is_eos.to(torch.uint8).argsort(dim=1, stable=True)[:, :k]  # the k best that did not end
        scores, origin = cand.gather(1, keep), origin.gather(1, keep).view(-1)
        tokens = torch.cat([tokens[origin], cand_tok.gather(1, keep).view(-1, 1)], dim=1)
        if done.any():
            live = (~done).nonzero().squeeze(1)
            if live.numel() == 0:
                break
            rows = (live.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            state = model.reorder_state(state, origin[rows], live)
            sentences, scores, tokens = sentences[live], scores[live], tokens[rows]
            last, found, best_ended = last[live], found[live], best_ended[live]
        else:
            state = model.reorder_state(state, origin)
    return [_ranked(hyps, alpha, n_best) for hyps in finished]


def _ranked(hyps: list[tuple[float, list[int]]], alpha: float, n_best: int) -> list[Hypothesis]:
    """The `n_best` of a sentence's finished hypotheses by length-penalised log-probability."""
    lengths = torch.tensor([len(tokens) for _, tokens in hyps])
    normed = torch.tensor([score for score, _ in hyps]) / length_penalty(lengths, alpha)
    return [
        Hypothesis(_strip(hyps[i][1]), float(normed[i]))
        for i in normed.argsort(descending=True, stable=True)[:n_best].tolist()
    ]
