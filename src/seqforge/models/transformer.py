"""Pre-LN Transformer encoder-decoder baseline built on `F.scaled_dot_product_attention`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqforge.config import TransformerModelCfg
from seqforge.data.tokenizer import PAD
from seqforge.models.embeddings import make_embeddings

State = dict[str, Tensor]


class MultiHeadAttention(nn.Module):
    """Multi-head attention; keys/values come from `memory` (cross) or from `x` (self)."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _split(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(
        self, x: Tensor, memory: Tensor | None = None, key_mask: Tensor | None = None,
        causal: bool = False,
    ) -> Tensor:
        """x (B, T, D); key_mask (B, S) True at real tokens; causal for decoder self-attention."""
        k, v = self.kv_proj(x if memory is None else memory).chunk(2, dim=-1)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(
            self._split(self.q_proj(x)), self._split(k), self._split(v), attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0, is_causal=causal,
        )
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def weights(self, x: Tensor, memory: Tensor, key_mask: Tensor) -> Tensor:
        """Attention probabilities of `x` over `memory`, averaged over heads: (B, T, S)."""
        q = self._split(self.q_proj(x))
        k = self._split(self.kv_proj(memory).chunk(2, dim=-1)[0])
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        return torch.softmax(scores, dim=-1).mean(dim=1)


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, ffn_dim: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, d_model)
        )


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerModelCfg) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.dropout)
        self.ffn = FeedForward(cfg.d_model, cfg.ffn_dim, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.drop(self.self_attn(self.norm1(x), key_mask=mask))
        return x + self.drop(self.ffn(self.norm2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TransformerModelCfg) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.dropout)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.dropout)
        self.ffn = FeedForward(cfg.d_model, cfg.ffn_dim, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, memory: Tensor, mem_mask: Tensor) -> Tensor:
        x = x + self.drop(self.self_attn(self.norms[0](x), causal=True))
        x = x + self.drop(self.cross_attn(self.norms[1](x), memory, key_mask=mem_mask))
        return x + self.drop(self.ffn(self.norms[2](x)))

    def cross_weights(self, x: Tensor, memory: Tensor, mem_mask: Tensor) -> Tensor:
        """Head-averaged encoder-decoder attention of this layer for input `x` (eval mode)."""
        x = x + self.self_attn(self.norms[0](x), causal=True)
        return self.cross_attn.weights(self.norms[1](x), memory, mem_mask)


def sinusoidal_positions(n: int, d: int) -> Tensor:
    pos = torch.arange(n).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq[: d // 2])
    return table


class TransformerSeq2Seq(nn.Module):
    """Pre-LN encoder-decoder; decoding re-runs the decoder on the prefix (short sequences)."""

    def __init__(self, cfg: TransformerModelCfg, src_vocab: int, tgt_vocab: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.src_embed, self.tgt_embed = make_embeddings(
            src_vocab, tgt_vocab, cfg.d_model, cfg.shared_embeddings
        )
        self.register_buffer(
            "positions", sinusoidal_positions(cfg.max_positions, cfg.d_model), persistent=False
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.output = nn.Linear(cfg.d_model, tgt_vocab, bias=False)
        if cfg.tied_embeddings:
            self.output.weight = self.tgt_embed.weight

    def _embed(self, embed: nn.Embedding, tokens: Tensor) -> Tensor:
        if tokens.size(1) > self.cfg.max_positions:
            raise ValueError(
                f"sequence of {tokens.size(1)} tokens exceeds model.max_positions={self.cfg.max_positions}"
            )
        scaled = embed(tokens) * math.sqrt(self.cfg.d_model)
        return self.drop(scaled + self.positions[: tokens.size(1)])

    def encode(self, src: Tensor, src_lens: Tensor) -> State:
        mask = src != PAD
        x = self._embed(self.src_embed, src)
        for layer in self.encoder:
            x = layer(x, mask)
        prefix = src.new_zeros(src.size(0), 0)
        return {"memory": self.enc_norm(x), "mask": mask, "prefix": prefix}

    def _decode(self, tgt_in: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        x = self._embed(self.tgt_embed, tgt_in)
        for layer in self.decoder:
            x = layer(x, memory, mask)
        return self.output(self.dec_norm(x))

    def cross_attention(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
        """Last decoder layer's encoder-decoder attention, averaged over heads: (B, T, S)."""
        state = self.encode(src, src_lens)
        x = self._embed(self.tgt_embed, tgt_in)
        for layer in self.decoder[:-1]:
            x = layer(x, state["memory"], state["mask"])
        return self.decoder[-1].cross_weights(x, state["memory"], state["mask"])

    def decode_step(self, prev_tokens: Tensor, state: State) -> tuple[Tensor, State]:
        prefix = torch.cat([state["prefix"], prev_tokens.unsqueeze(1)], dim=1)
        logits = self._decode(prefix, state["memory"], state["mask"])[:, -1]
        return torch.log_softmax(logits.float(), dim=-1), dict(state, prefix=prefix)

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
        state = self.encode(src, src_lens)
        return self._decode(tgt_in, state["memory"], state["mask"])
