"""Token embeddings shared by every model family."""

from __future__ import annotations

from torch import nn

from seqforge.data.tokenizer import PAD


def make_embeddings(src_vocab: int, tgt_vocab: int, dim: int, shared: bool) -> tuple[nn.Embedding, nn.Embedding]:
    """Source and target embeddings (one module when `shared`), N(0, dim^-1/2), zero padding row.

    Small weights keep tied output projections near-uniform at the start; models scale lookups
    by sqrt(dim) so their layers still see unit-scale inputs.
    """
    src = nn.Embedding(src_vocab, dim, padding_idx=PAD)
    tgt = src if shared else nn.Embedding(tgt_vocab, dim, padding_idx=PAD)
    for embed in (src,) if shared else (src, tgt):
        nn.init.normal_(embed.weight, std=dim**-0.5)
        nn.init.zeros_(embed.weight[PAD])
    return src, tgt
