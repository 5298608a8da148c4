"""A trained Transformer in CTranslate2's format: its weights laid into a `ctranslate2.specs.TransformerSpec`
(pre-norm layers, fused self-attention QKV and cross-attention KV, our own position table, scaled and
shared embeddings, the vocabulary), optionally quantized, saved as CTranslate2 loads it.

CTranslate2 converts Transformers only (recurrent models: OpenNMT/CTranslate2#796), so `SPEC_BUILDERS` holds
the families it can take.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqforge.data.tokenizer import BOS, EOS, SPECIALS, UNK, SubwordTokenizer
from seqforge.export import ExportError
from seqforge.inference.ct2_predictor import SUBDIR
from seqforge.models.base import Seq2Seq
from seqforge.models.transformer import MultiHeadAttention, TransformerSeq2Seq

QUANTIZATIONS = ("float32", "int8", "int8_float32", "bfloat16", "float16")  # CTranslate2's weight types offered
# (float16: GPUs; on a CPU CTranslate2 computes it in float32)
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default, what every norm of TransformerSeq2Seq uses


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy().copy()


def _norm(spec, norm: nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _array(norm.weight), _array(norm.bias)


def _linear(spec, *linears: nn.Linear) -> None:
    """`spec` = the linears stacked along their outputs (a fused projection)."""
    spec.weight = _array(torch.cat([layer.weight for layer in linears]))
    spec.bias = _array(torch.cat([layer.bias for layer in linears]))


def _attention(spec, attn: MultiHeadAttention, norm: nn.LayerNorm, self_attention: bool) -> None:
    """Self-attention: one fused QKV projection; cross-attention: Q, then fused KV (CTranslate2's layout)."""
    _norm(spec.layer_norm, norm)
    if self_attention:
        _linear(spec.linear[0], attn.q_proj, attn.kv_proj)
    else:
        _linear(spec.linear[0], attn.q_proj)
        _linear(spec.linear[1], attn.kv_proj)
    _linear(spec.linear[-1], attn.out_proj)


def _ffn(spec, ffn: nn.Sequential, norm: nn.LayerNorm) -> None:
    _norm(spec.layer_norm, norm)
    _linear(spec.linear_0, ffn[0])
    _linear(spec.linear_1, ffn[3])


def transformer_spec(model: TransformerSeq2Seq):
    """The CTranslate2 spec of a `TransformerSeq2Seq` (vocabularies not yet registered)."""
    from ctranslate2.specs import common_spec
    from ctranslate2.specs import transformer_spec as ts

    cfg = model.cfg
    spec = ts.TransformerSpec.from_config(
        (cfg.enc_layers, cfg.dec_layers), cfg.heads, pre_norm=True, activation=common_spec.Activation.RELU
    )
    enc, dec = spec.encoder, spec.decoder
    enc.embeddings[0].weight, dec.embeddings.weight = _array(model.src_embed.weight), _array(model.tgt_embed.weight)
    for side in (enc, dec):  # token t: embedding × sqrt(d_model) + our sinusoid table's row t
        side.scale_embeddings = True
        side.position_encodings.encodings = _array(model.positions)
    _norm(enc.layer_norm, model.enc_norm)
    _norm(dec.layer_norm, model.dec_norm)
    for layer_spec, layer in zip(enc.layer, model.encoder, strict=True):
        _attention(layer_spec.self_attention, layer.self_attn, layer.norm1, self_attention=True)
        _ffn(layer_spec.ffn, layer.ffn, layer.norm2)
    for layer_spec, layer in zip(dec.layer, model.decoder, strict=True):
        _attention(layer_spec.self_attention, layer.self_attn, layer.norms[0], self_attention=True)
        _attention(layer_spec.attention, layer.cross_attn, layer.norms[1], self_attention=False)
        _ffn(layer_spec.ffn, layer.ffn, layer.norms[2])
    dec.projection.weight = _array(model.output.weight)
    spec.config.layer_norm_epsilon = LAYER_NORM_EPS
    return spec


SPEC_BUILDERS: dict[str, Callable] = {"transformer": transformer_spec}


def vocabulary(tokenizer: SubwordTokenizer, side: str) -> list[str]:
    """The subword strings of `side`'s ids 0..V-1, which CTranslate2 looks tokens up in: unique, and the
    special tokens where the model has them."""
    tokens = tokenizer.tokens(list(range(tokenizer.vocab_size(side))), side)
    if tokens[: len(SPECIALS)] != SPECIALS:
        raise ExportError(f"the {side} vocabulary starts {tokens[: len(SPECIALS)]}, not {SPECIALS}")
    if len(set(tokens)) != len(tokens):
        twice = sorted({t for t in tokens if tokens.count(t) > 1})[:5]
        raise ExportError(
            f"the {side} vocabulary holds the same string for several ids ({', '.join(twice)}): "
            "CTranslate2 looks tokens up by string"
        )
    return tokens


def convert(model: Seq2Seq, arch: str, tokenizer: SubwordTokenizer, model_dir: Path, quantization: str) -> None:
    """Save `model` (family `arch`) with `tokenizer`'s vocabularies as a CTranslate2 model in
    `model_dir/SUBDIR`, its weights stored as `quantization`."""
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"--quantization {quantization!r}: expected one of {', '.join(QUANTIZATIONS)}")
    if arch not in SPEC_BUILDERS:
        raise ExportError(
            f"CTranslate2 converts Transformers only ({', '.join(SPEC_BUILDERS)}); this model's "
            f"family is {arch!r} (recurrent models: OpenNMT/CTranslate2#796)"
        )
    spec = SPEC_BUILDERS[arch](model)
    specials = dict(
        zip(("unk_token", "bos_token", "eos_token"), (SPECIALS[UNK], SPECIALS[BOS], SPECIALS[EOS]), strict=True)
    )
    for key, token in specials.items():
        setattr(spec.config, key, token)
    spec.config.decoder_start_token = SPECIALS[BOS]
    spec.config.add_source_eos = True  # as `collate` does
    spec.register_source_vocabulary(vocabulary(tokenizer, "source"))
    spec.register_target_vocabulary(vocabulary(tokenizer, "target"))
    spec.validate()
    spec.optimize(quantization=quantization)
    (model_dir / SUBDIR).mkdir(parents=True, exist_ok=True)
    spec.save(str(model_dir / SUBDIR))
