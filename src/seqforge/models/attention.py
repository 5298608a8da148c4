"""Encoder-decoder attention: one module, four scoring functions chosen by `kind`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

KINDS = ("bahdanau", "luong_dot", "luong_general", "luong_concat")


class Attention(nn.Module):
    """Scores decoder queries against encoder keys and returns (context, weights).

    - ``bahdanau``: additive, ``v^T tanh(W_q q + W_k k + b)`` (Bahdanau et al., 2015)
    - ``luong_dot``: ``q^T k`` (query and key sizes must match)
    - ``luong_general``: ``q^T W k``
    - ``luong_concat``: ``v^T tanh(W [q; k])`` (Luong et al., 2015)

    Key-side projections depend only on the encoder output, so :meth:`project_keys` computes
    them once per source batch and every decoder step reuses them.
    """

    def __init__(self, kind: str, query_dim: int, key_dim: int, attn_dim: int) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"model.attention: unknown attention kind {kind!r} (known: {', '.join(KINDS)})")
        if kind == "luong_dot" and query_dim != key_dim:
            raise ValueError(f"model.attention: luong_dot needs equal query ({query_dim}) and key ({key_dim}) sizes")
        self.kind = kind
        if kind in ("bahdanau", "luong_concat"):
            # W [q; k] == W_q q + W_k k: the concat form is computed split so keys project once.
            self.query_proj = nn.Linear(query_dim, attn_dim, bias=False)
            self.key_proj = nn.Linear(key_dim, attn_dim, bias=kind == "bahdanau")
            self.energy = nn.Linear(attn_dim, 1, bias=False)
        elif kind == "luong_general":
            self.key_proj = nn.Linear(key_dim, query_dim, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """Key-side part of the score, shape (B, S, *); the keys themselves for ``luong_dot``."""
        return keys if self.kind == "luong_dot" else self.key_proj(keys)

    def forward(self, query: Tensor, keys: Tensor, proj_keys: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Q queries per sentence over its keys: query (B, Q, D_q), keys (B, S, K), mask (B, S) True
        at real tokens -> context (B, Q, K), weights (B, Q, S).

        Q is the number of decoder positions (teacher forcing) or of hypotheses (beam search):
        every query of a sentence reads the same keys, which are never copied per query.
        """
        if self.kind in ("bahdanau", "luong_concat"):
            hidden = torch.tanh(self.query_proj(query).unsqueeze(2) + proj_keys.unsqueeze(1))
            scores = self.energy(hidden).squeeze(-1)
        else:
            scores = torch.bmm(query, proj_keys.transpose(1, 2))
        weights = torch.softmax(scores.masked_fill(~mask.unsqueeze(1), float("-inf")), dim=-1)
        return torch.bmm(weights, keys), weights
