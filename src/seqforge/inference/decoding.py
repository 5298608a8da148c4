"""Search over a model's `encode` / `decode_step` / `reorder_state`: greedy, sampling and beam search.

Finished sentences leave the batch, so the last steps of a batch cost only what is still being
written; output lengths are capped at what the model can represent (`max_decode_steps`).
"""

from __future__ import annotations

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

    def __call__(self, logp: Tensor) -> Tensor:
        logits = logp / self.temperature
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


def _restrict(logp: Tensor, step: int, min_length: int, no_repeat_ngram: int,
              history: Tensor | None) -> Tensor:
    """Scores every search shares: never PAD/BOS, no EOS before `min_length`, n-gram blocking over
    `history`, the (N, step) tokens so far (None when blocking is off)."""
    logp[:, NEVER] = float("-inf")
    if step < min_length:
        logp[:, EOS] = float("-inf")
    if no_repeat_ngram:
        logp.masked_fill_(ngram_bans(history, no_repeat_ngram, logp.size(-1)), float("-inf"))
    return logp


@torch.no_grad()
def generate(
    model: Seq2Seq, src: Tensor, src_lens: Tensor, max_len: Tensor,
    sampler: Sampler | None = None, no_repeat_ngram: int = 0, min_length: int = 0,
) -> list[list[int]]:
    """Left-to-right decoding, one hypothesis per source: arg-max (greedy) or `sampler`'s draw."""
    state = model.encode(src, src_lens)
    limit = _caps(model, max_len, src.device)
    rows = torch.arange(src.size(0), device=src.device)  # each live row's sentence
    out = src.new_full((src.size(0), int(limit.max())), PAD)
    prev = src.new_full((src.size(0),), BOS)
    for t in range(out.size(1)):
        logp, state = model.decode_step(prev, state)
        logp = _restrict(logp, t, min_length, no_repeat_ngram, out[rows, :t] if no_repeat_ngram else None)
        prev = sampler(logp) if sampler is not None else logp.argmax(-1)
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


def _settled(scores: Tensor, finished: Tensor, lengths: Tensor, limit: Tensor, alpha: float, n_best: int) -> Tensor:
    """(B,) True where no live hypothesis can still enter a sentence's n-best: its n-th best finished
    score already reaches the best any live one could get. Log-probabilities only fall, so the best
    a live hypothesis can reach is its current log-probability over the largest length penalty its
    cap allows; stopping there drops nothing that could still outrank the n-best."""
    normed = (scores / length_penalty(lengths, alpha)).masked_fill(~finished, float("-inf"))
    reachable = (scores / length_penalty(limit, alpha)).masked_fill(finished, float("-inf")).amax(1)
    return finished.all(1) | (normed.topk(n_best, dim=1).values[:, -1] >= reachable)


@torch.no_grad()
def beam_search(
    model: Seq2Seq, src: Tensor, src_lens: Tensor, max_len: Tensor, beam_size: int,
    alpha: float = 1.0, n_best: int = 1, no_repeat_ngram: int = 0, min_length: int = 0,
) -> list[list[Hypothesis]]:
    """Batched beam search. A finished hypothesis stays in its beam (extended by PAD at no cost); a
    sentence leaves the batch once no live hypothesis can enter its n-best (`_settled`).

    Returns, per sentence, the `n_best` hypotheses ranked by length-penalised log-probability.
    With `no_repeat_ngram` = n, no hypothesis contains the same n-gram twice; none ends before
    `min_length` tokens unless its length cap forces it.
    """
    k, device = beam_size, src.device
    state = model.encode(src, src_lens)
    state = model.reorder_state(state, torch.arange(src.size(0), device=device).repeat_interleave(k))
    sentences = torch.arange(src.size(0), device=device)  # each live sentence's index in `src`
    limit = _caps(model, max_len, device).repeat_interleave(k)
    scores = torch.full((src.size(0), k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # only the first beam is alive before the first step
    tokens = src.new_full((src.size(0) * k, 1), BOS)
    finished = torch.zeros(src.size(0) * k, dtype=torch.bool, device=device)
    lengths = torch.zeros(src.size(0) * k, dtype=torch.long, device=device)
    results: list[list[Hypothesis]] = [[] for _ in range(src.size(0))]

    def keep_results(done: Tensor) -> None:
        """Record the n-best of the live sentences marked in `done` (B,)."""
        settled = done.nonzero().flatten()
        normed = scores[settled] / length_penalty(lengths.view(-1, k)[settled], alpha)
        best = normed.argsort(dim=1, descending=True)[:, :n_best]
        rows = tokens.view(-1, k, tokens.size(1))[settled, :, 1:].tolist()  # only the finished sentences
        for i, b in enumerate(settled.tolist()):
            results[int(sentences[b])] = [Hypothesis(_strip(rows[i][j]), float(normed[i, j]))
                                          for j in best[i].tolist()]

    only = torch.full((1, k), float("-inf"), device=device)  # a row whose one candidate is its first column
    only[0, 0] = 0.0
    for t in range(int(limit.max())):
        logp, state = model.decode_step(tokens[:, -1], state)
        forced = ~finished & (t + 1 >= limit)  # must end here, whatever min_length says
        eos = logp[:, EOS].clone()
        logp = _restrict(logp, t, min_length, no_repeat_ngram, tokens[:, 1:] if no_repeat_ngram else None)
        # each hypothesis's k best continuations hold the k best of its sentence: top-k over k × k, not k × V
        top, top_tok = logp.topk(k, dim=1)
        top = torch.where(finished[:, None], only, torch.where(forced[:, None], only + eos[:, None], top))
        top_tok[:, 0] = torch.where(finished, PAD, torch.where(forced, EOS, top_tok[:, 0]))  # PAD at no cost
        cand = (scores.view(-1, 1) + top).view(-1, k * k)
        scores, flat = cand.topk(k, dim=1)
        origin = (torch.arange(cand.size(0), device=device).unsqueeze(1) * k + flat // k).view(-1)
        new_tok = top_tok.view(-1, k * k).gather(1, flat).view(-1)
        tokens = torch.cat([tokens[origin], new_tok.unsqueeze(1)], dim=1)
        was_finished = finished[origin]
        lengths = lengths[origin] + (~was_finished).long()
        finished = was_finished | (new_tok == EOS)
        done = _settled(scores, finished.view(-1, k), lengths.view(-1, k), limit.view(-1, k), alpha, n_best)
        if done.any():
            keep_results(done)
            live = (~done).nonzero().squeeze(1)
            if live.numel() == 0:
                break
            rows = (live.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            state = model.reorder_state(state, origin[rows], live)
            sentences, scores = sentences[live], scores[live]
            tokens, finished, lengths, limit = tokens[rows], finished[rows], lengths[rows], limit[rows]
        else:
            state = model.reorder_state(state, origin)
    else:  # the length caps ended the search; record what is still live
        keep_results(torch.ones_like(sentences, dtype=torch.bool))
    return results
