"""Pre-LN Transformer encoder-decoder baseline built on `F.scaled_dot_product_attention`."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from seqforge.data.tokenizer import PAD
from seqforge.models.base import DecoderState, FamilyCfg, Seq2Seq
from seqforge.models.dropout import Dropout
from seqforge.models.embeddings import make_embeddings
from seqforge.models.registry import register_family

# Not cuDNN's: it builds a graph for every new (batch, length) shape, and token-budget batches and beam
# steps are nearly all new shapes (the GPU check's profile on an H200, 2026-11-27: 1.5 s of CPU in
# `_cudnn_attention_forward`/`_backward` over 4 new-shape bf16 steps of 2.2 s; 45 ms once shapes repeat).
SDPA_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


class TransformerModelCfg(FamilyCfg):
    """A pre-LN Transformer encoder-decoder."""

    arch: Literal["transformer"]  # the family
    d_model: int = Field(256, gt=0)  # model width (embeddings, attention, residual stream)
    heads: int = Field(4, ge=1)  # attention heads (d_model must divide by it)
    enc_layers: int = Field(3, ge=1)  # encoder layers
    dec_layers: int = Field(3, ge=1)  # decoder layers
    ffn_dim: int = Field(1024, gt=0)  # feed-forward inner width
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # on embeddings, attention and feed-forward outputs
    tied_embeddings: bool = True  # the output projection shares the target embedding's weights
    shared_embeddings: bool = True  # one embedding for source and target (needs a joint vocabulary)
    max_positions: int = Field(512, gt=0)  # the longest sequence it encodes or writes (EOS included)

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerModelCfg:
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        return self


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

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of `x` (B, S, D), split into heads: (B, H, S, D/H) each."""
        k, v = self.kv_proj(x).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def attend(self, x: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """Queries from `x` (B, T, D) over projected keys/values; key_mask (B, S) True at real tokens."""
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        with sdpa_kernel(SDPA_BACKENDS):
            out = F.scaled_dot_product_attention(
                self._split(self.q_proj(x)),
                k,
                v,
                attn_mask=attn_mask,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=causal,
            )
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        key_mask: Tensor | None = None,
        causal: bool = False,
    ) -> Tensor:
        """x (B, T, D) over `memory` (cross) or itself (self; causal for the decoder)."""
        return self.attend(x, *self.project_kv(x if memory is None else memory), key_mask=key_mask, causal=causal)

    def weights(self, x: Tensor, memory: Tensor, key_mask: Tensor) -> Tensor:
        """Attention probabilities of `x` over `memory`, averaged over heads: (B, T, S)."""
        q = self._split(self.q_proj(x))
        k = self._split(self.kv_proj(memory).chunk(2, dim=-1)[0])
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        return torch.softmax(scores, dim=-1).mean(dim=1)


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, ffn_dim: int, dropout: float) -> None:
        super().__init__(nn.Linear(d_model, ffn_dim), nn.ReLU(), Dropout(dropout), nn.Linear(ffn_dim, d_model))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerModelCfg) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.dropout)
        self.ffn = FeedForward(cfg.d_model, cfg.ffn_dim, cfg.dropout)
        self.drop = Dropout(cfg.dropout)

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
        self.drop = Dropout(cfg.dropout)

    def forward(self, x: Tensor, memory: Tensor, mem_mask: Tensor) -> Tensor:
        x = x + self.drop(self.self_attn(self.norms[0](x), causal=True))
        x = x + self.drop(self.cross_attn(self.norms[1](x), memory, key_mask=mem_mask))
        return x + self.drop(self.ffn(self.norms[2](x)))

    def step(
        self, x: Tensor, past: tuple[Tensor, Tensor], cross: tuple[Tensor, Tensor], mem_mask: Tensor
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One new position `x` (N, 1, D) of every hypothesis, given the keys/values of the positions
        before it (`past`, per hypothesis) and of the encoder memory (`cross`, per sentence: the
        hypotheses of a sentence attend as that sentence's queries); returns its output and `past`
        grown by it."""
        h = self.norms[0](x)
        k, v = self.self_attn.project_kv(h)
        k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        x = x + self.drop(self.self_attn.attend(h, k, v))
        queries = self.norms[1](x).view(mem_mask.size(0), -1, x.size(-1))  # (B, hypotheses, D)
        x = x + self.drop(self.cross_attn.attend(queries, *cross, key_mask=mem_mask).view_as(x))
        return x + self.drop(self.ffn(self.norms[2](x))), (k, v)

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


@register_family("transformer")
class TransformerSeq2Seq(Seq2Seq):
    """Pre-LN encoder-decoder. Decoding is incremental: each step runs the decoder on the new
    position only, over cached self-attention keys/values and encoder keys/values projected once."""

    config = TransformerModelCfg
    width: ClassVar[dict[str, int]] = {"model.d_model": 1, "model.ffn_dim": 3}

    @classmethod
    def describe(cls, cfg: dict) -> str:
        return (
            f"Transformer, {cfg['enc_layers']}+{cfg['dec_layers']} layers, d_model {cfg['d_model']}, "
            f"{cfg['heads']} heads, FFN {cfg['ffn_dim']}"
        )

    def __init__(self, cfg: TransformerModelCfg, src_vocab: int, tgt_vocab: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.max_decode_steps = self.max_source_tokens = cfg.max_positions  # token t sits at position t
        self.src_embed, self.tgt_embed = make_embeddings(src_vocab, tgt_vocab, cfg.d_model, cfg.shared_embeddings)
        self.register_buffer("positions", sinusoidal_positions(cfg.max_positions, cfg.d_model), persistent=False)
        self.drop = Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.output = nn.Linear(cfg.d_model, tgt_vocab, bias=False)
        if cfg.tied_embeddings:
            self.output.weight = self.tgt_embed.weight

    def _embed(self, embed: nn.Embedding, tokens: Tensor, start: int = 0) -> Tensor:
        """Scaled embeddings of `tokens` (B, T) at positions start .. start + T - 1."""
        end = start + tokens.size(1)
        if end > self.cfg.max_positions:
            raise ValueError(f"sequence of {end} tokens exceeds model.max_positions={self.cfg.max_positions}")
        scaled = embed(tokens) * math.sqrt(self.cfg.d_model)
        return self.drop(scaled + self.positions[start:end])

    def _memory(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder output (B, S, D) and its mask (B, S)."""
        mask = src != PAD
        x = self._embed(self.src_embed, src)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.enc_norm(x), mask

    def encode(self, src: Tensor, src_lens: Tensor) -> DecoderState:
        memory_out, mask = self._memory(src)
        memory, hyps = {"mask": mask}, {}
        heads = self.cfg.heads
        empty = memory_out.new_zeros(src.size(0), heads, 0, self.cfg.d_model // heads)
        for i, layer in enumerate(self.decoder):
            memory[f"cross_k{i}"], memory[f"cross_v{i}"] = layer.cross_attn.project_kv(memory_out)
            hyps[f"self_k{i}"], hyps[f"self_v{i}"] = empty, empty
        return DecoderState(memory, hyps)

    def _decode(self, tgt_in: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        x = self._embed(self.tgt_embed, tgt_in)
        for layer in self.decoder:
            x = layer(x, memory, mask)
        return self.output(self.dec_norm(x))

    def cross_attention(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
        """Last decoder layer's encoder-decoder attention, averaged over heads: (B, T, S)."""
        memory, mask = self._memory(src)
        x = self._embed(self.tgt_embed, tgt_in)
        for layer in self.decoder[:-1]:
            x = layer(x, memory, mask)
        return self.decoder[-1].cross_weights(x, memory, mask)

    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Logits of the next token after `prev_tokens` (N,), and the state grown by it."""
        hyps, memory = state.hyps, state.memory
        x = self._embed(self.tgt_embed, prev_tokens.unsqueeze(1), start=hyps["self_k0"].size(2))
        grown = {}
        for i, layer in enumerate(self.decoder):
            past, cross = (hyps[f"self_k{i}"], hyps[f"self_v{i}"]), (memory[f"cross_k{i}"], memory[f"cross_v{i}"])
            x, (grown[f"self_k{i}"], grown[f"self_v{i}"]) = layer.step(x, past, cross, memory["mask"])
        logits = self.output(self.dec_norm(x[:, 0]))
        return logits.float(), DecoderState(memory, grown)

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
        return self._decode(tgt_in, *self._memory(src))

    def probe_states(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> tuple[Tensor, list[Tensor], Tensor]:
        """Teacher-forced logits with the encoder output split into one tensor per position; distances
        count from the last source token (EOS), -1 at padding (see `Seq2Seq.probe_states`)."""
        memory, mask = self._memory(src)
        states = list(memory.unbind(1))
        positions = torch.arange(src.size(1), device=src.device)[:, None]  # (S, 1)
        distances = torch.where(mask.T, src_lens.to(src.device)[None, :] - 1 - positions, -1)
        return self._decode(tgt_in, torch.stack(states, dim=1), mask), states, distances
