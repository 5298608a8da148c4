"""Search over a model's `encode`/`decode_step`: greedy, sampling and batched beam search."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqforge.data.tokenizer import BOS, EOS, PAD


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # without BOS/EOS
    score: float  # length-normalised log-probability


NEVER = [PAD, BOS]  # never generated (PAD only fills finished beams)


def max_lengths(src_lens: Tensor, ratio: float, offset: int) -> Tensor:
    """Per-sentence cap on generated tokens (EOS included)."""
    return (src_lens.float() * ratio).long() + offset


def reorder(state: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    """Select rows of every (batch-first) state tensor."""
    return {key: value.index_select(0, index) for key, value in state.items()}


def _strip(row: list[int]) -> list[int]:
    out = []
    for tok in row:
        if tok in (EOS, PAD):
            break
        out.append(tok)
    return out


def banned_tokens(history: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in `history` (n-gram blocking)."""
    if n <= 0 or len(history) < n - 1:
        return set()
    prefix = tuple(history[len(history) - n + 1 :]) if n > 1 else ()
    return {history[i + n - 1] for i in range(len(history) - n + 1) if tuple(history[i : i + n - 1]) == prefix}


def block_repeats(logp: Tensor, history: Tensor, alive: Tensor, n: int) -> Tensor:
    """Set to -inf the scores of tokens that would repeat an n-gram of each alive row's history."""
    if n <= 0 or history.size(1) < n - 1:
        return logp
    rows = history.tolist()
    for r in alive.nonzero().flatten().tolist():
        banned = banned_tokens(rows[r], n)
        if banned:
            logp[r, list(banned)] = float("-inf")
    return logp


@dataclass(frozen=True)
class Sampler:
    """Top-k / nucleus (top-p) sampling with temperature; `generator` fixes the random stream."""

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


@torch.no_grad()
def generate(
    model: nn.Module, src: Tensor, src_lens: Tensor, max_len: Tensor,
    sampler: Sampler | None = None, no_repeat_ngram: int = 0, min_length: int = 0,
) -> list[list[int]]:
    """Left-to-right decoding, one hypothesis per source: arg-max (greedy) or `sampler`'s draw."""
    state = model.encode(src, src_lens)
    prev = src.new_full((src.size(0),), BOS)
    done = torch.zeros_like(prev, dtype=torch.bool)
    out: list[Tensor] = []
    for t in range(int(max_len.max())):
        logp, state = model.decode_step(prev, state)
        logp[:, NEVER] = float("-inf")
        if t < min_length:
            logp[:, EOS] = float("-inf")
        if no_repeat_ngram and out:
            logp = block_repeats(logp, torch.stack(out, 1), ~done, no_repeat_ngram)
        prev = sampler(logp) if sampler is not None else logp.argmax(-1)
        prev = prev.masked_fill(t + 1 >= max_len, EOS).masked_fill(done, PAD)
        out.append(prev)
        done |= prev == EOS
        if done.all():
            break
    return [_strip(row) for row in torch.stack(out, 1).tolist()]


def greedy(model: nn.Module, src: Tensor, src_lens: Tensor, max_len: Tensor) -> list[list[int]]:
    """Arg-max decoding; returns token ids per sentence."""
    return generate(model, src, src_lens, max_len)


def length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT length penalty ((5 + |y|) / 6) ** alpha."""
    return ((5.0 + lengths.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model: nn.Module, src: Tensor, src_lens: Tensor, max_len: Tensor, beam_size: int,
    alpha: float = 1.0, n_best: int = 1, no_repeat_ngram: int = 0, min_length: int = 0,
) -> list[list[Hypothesis]]:
    """Batched beam search; finished beams stay in the beam (extended by PAD at no cost).

    Returns, per sentence, the `n_best` hypotheses ranked by length-penalised log-probability.
    With `no_repeat_ngram` = n, no hypothesis contains the same n-gram twice; none ends before
    `min_length` tokens unless its length cap forces it.
    """
    batch, k = src.size(0), beam_size
    state = model.encode(src, src_lens)
    rows = torch.arange(batch, device=src.device).repeat_interleave(k)
    state = reorder(state, rows)
    limit = max_len.to(src.device)[rows]
    scores = torch.full((batch, k), float("-inf"), device=src.device)
    scores[:, 0] = 0.0  # only the first beam is alive before the first step
    tokens = src.new_full((batch * k, 1), BOS)
    finished = torch.zeros(batch * k, dtype=torch.bool, device=src.device)
    lengths = torch.zeros(batch * k, dtype=torch.long, device=src.device)
    for t in range(int(limit.max())):
        logp, state = model.decode_step(tokens[:, -1], state)
        vocab = logp.size(-1)
        logp[:, NEVER] = float("-inf")
        forced = ~finished & (t + 1 >= limit)  # must end here
        if t < min_length:
            logp[~forced, EOS] = float("-inf")
        logp[forced] = torch.where(
            torch.arange(vocab, device=logp.device) == EOS, logp[forced], float("-inf")
        )
        if no_repeat_ngram:
            logp = block_repeats(logp, tokens[:, 1:], ~finished, no_repeat_ngram)
        logp[finished] = float("-inf")
        logp[finished, PAD] = 0.0
        cand = (scores.view(-1, 1) + logp).view(batch, k * vocab)
        scores, flat = cand.topk(k, dim=1)
        origin = (torch.arange(batch, device=src.device).unsqueeze(1) * k + flat // vocab).view(-1)
        new_tok = (flat % vocab).view(-1)
        state = reorder(state, origin)
        tokens = torch.cat([tokens[origin], new_tok.unsqueeze(1)], dim=1)
        was_finished = finished[origin]
        lengths = lengths[origin] + (~was_finished).long()
        finished = was_finished | (new_tok == EOS)
        if finished.all():
            break
    normed = (scores.view(-1) / length_penalty(lengths, alpha)).view(batch, k)
    order = normed.argsort(dim=1, descending=True)[:, :n_best]
    token_rows = tokens[:, 1:].tolist()
    return [
        [Hypothesis(_strip(token_rows[b * k + j]), float(normed[b, j])) for j in order[b].tolist()]
        for b in range(batch)
    ]
