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
            raise ValueError(
                f"model.attention: luong_dot needs equal query ({query_dim}) and key ({key_dim}) sizes"
            )
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

    def forward(
        self, query: Tensor, keys: Tensor, proj_keys: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """query (B, Q), keys (B, S, K), mask (B, S) True at real tokens -> (B, K), (B, S)."""
        if self.kind in ("bahdanau", "luong_concat"):
            scores = self.energy(torch.tanh(self.query_proj(query).unsqueeze(1) + proj_keys))
            scores = scores.squeeze(-1)
        else:
            scores = torch.bmm(proj_keys, query.unsqueeze(-1)).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)
        return context, weights
