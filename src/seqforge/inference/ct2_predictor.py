"""Decoding with a model exported to CTranslate2 (`seqforge export --format ct2`): the same text in and out,
limits and decoding settings as the PyTorch `Predictor`, searched by CTranslate2's translator.

CTranslate2's beam search is ours (`decoding.beam_search`); two differences are undone here: it normalises
scores by length^alpha (ours: GNMT's ((5 + length) / 6)^alpha), so its `beam_size` finished hypotheses come
back and are ranked with GNMT's penalty, and one batch shares one length limit, so a sentence that reached its
own cap under a longer one is searched again alone. Greedy and beam search give our tokens, except where more
than `beam_size` hypotheses finish on a sentence's last step (CTranslate2 then keeps `beam_size` of them by its
own normalisation; `bench/inference.py` counts the sentences that differ).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from seqforge.config.base import ConfigError
from seqforge.config.shared import DecodeCfg
from seqforge.data.tokenizer import BOS, PAD, SPECIALS, SubwordTokenizer
from seqforge.inference.decoding import length_penalty, max_lengths
from seqforge.inference.predictor import Predictor

NEVER = [[SPECIALS[PAD]], [SPECIALS[BOS]]]  # as `decoding.NEVER`
SUBDIR = "ct2"  # the CTranslate2 model inside an exported model directory (`seqforge.export.ct2` writes it)


class CT2Predictor(Predictor):
    """A CTranslate2 `Translator` + tokenizer + decoding settings; `predict` takes and returns plain text."""

    def __init__(
        self, translator, tokenizer: SubwordTokenizer, meta: dict, decode_cfg: DecodeCfg | None = None
    ) -> None:
        self.translator, self.tokenizer, self.meta = translator, tokenizer, meta
        self.decode_cfg = decode_cfg or DecodeCfg()
        self.device = torch.device(translator.device)
        self.max_source_tokens = meta["experiment"]["model"]["max_positions"]
        self.source_vocab = tokenizer.tokens(list(range(tokenizer.vocab_size("source"))), "source")
        self.target_vocab = tokenizer.tokens(list(range(tokenizer.vocab_size("target"))), "target")
        self.target_ids = {tok: i for i, tok in enumerate(self.target_vocab)}

    @classmethod
    def from_dir(cls, model_dir: Path, meta: dict, decode_cfg: DecodeCfg | None) -> CT2Predictor:
        """The translator on `decode_cfg.device` (auto: a GPU when CTranslate2 sees one) with as many threads as
        torch has (what `seqforge serve` gives each worker), computing in the exported weights' type (bf16
        decoding: bfloat16)."""
        import ctranslate2

        cfg = decode_cfg or DecodeCfg()
        gpus = ctranslate2.get_cuda_device_count()
        if cfg.device == "cuda" and not gpus:
            raise ConfigError("decode.device: cuda, but this machine has no GPU CTranslate2 can use (use auto or cpu)")
        on_gpu = cfg.device != "cpu" and gpus > 0
        # on CPU one worker per thread, each decoding its own batch on one thread (`generate_ids` queues them all):
        # measured against one worker on all threads in bench/inference.py
        torch_threads = torch.get_num_threads()
        threads = {} if on_gpu else {"inter_threads": torch_threads, "intra_threads": 1}
        translator = ctranslate2.Translator(
            str(model_dir / SUBDIR),
            device="cuda" if on_gpu else "cpu",
            compute_type="bfloat16" if cfg.precision == "bf16" else "default",
            **threads,
        )
        torch.set_num_threads(torch_threads)  # CTranslate2 set this thread's OpenMP threads to its intra_threads
        return cls(translator, SubwordTokenizer.load(model_dir / "tokenizer.json"), meta, cfg)

    def _tokens(self, ids: list[int]) -> list[str]:
        return [self.source_vocab[i] for i in ids]

    @staticmethod
    def _options(cfg: DecodeCfg) -> dict:
        """`translate_batch` keywords for `cfg`'s search: beam (beam 1: greedy) or sampling."""
        options = {
            "no_repeat_ngram_size": cfg.no_repeat_ngram,
            "min_decoding_length": cfg.min_length,
            "suppress_sequences": NEVER,
            "max_input_length": 0,
        }  # limits: `encode` checked them
        if cfg.strategy == "sample":
            return options | {
                "beam_size": 1,
                "sampling_topk": cfg.top_k,
                "sampling_topp": cfg.top_p,
                "sampling_temperature": cfg.temperature,
            }
        return options | {
            "beam_size": cfg.beam_size,
            "return_scores": True,
            "length_penalty": cfg.length_penalty,
            "patience": cfg.patience,
            # every finished hypothesis, re-ranked by `_ranked`; none needed without a penalty
            "num_hypotheses": cfg.n_best if cfg.length_penalty == 0 else cfg.beam_size,
        }

    @staticmethod
    def _ranked(result, cfg: DecodeCfg, steps: int) -> list[list[str]]:
        """A beam's hypotheses, best first by GNMT's length penalty, `cfg.n_best` of them; sampling's as drawn.
        `steps`: the batch's `max_decoding_length` (a hypothesis that long ended there, without EOS)."""
        if cfg.strategy == "sample":
            return result.hypotheses
        lengths = torch.tensor([min(len(hyp) + 1, steps) for hyp in result.hypotheses])  # EOS included, as both count
        log_probs = torch.tensor(result.scores) * lengths.float() ** cfg.length_penalty  # CT2's score: / length^alpha
        order = (log_probs / length_penalty(lengths, cfg.length_penalty)).argsort(descending=True, stable=True)
        return [result.hypotheses[i] for i in order[: cfg.n_best].tolist()]

    def generate_ids(self, src_ids: list[list[int]], cfg: DecodeCfg | None = None) -> list[list[list[int]]]:
        """n-best token ids per source, decoded in length-sorted batches (input order kept), all submitted at
        once so that the translator's workers (one per thread) decode batches side by side; each output within
        its sentence's cap (`decoding.max_lengths`, EOS included). Sampling sets CTranslate2's seed to `cfg.seed`,
        but each of its worker threads seeds its generator once, at its first draw: samples repeat only from a
        fresh process with one thread (PyTorch's `Predictor` reseeds at every call)."""
        import ctranslate2

        cfg = cfg or self.decode_cfg
        if cfg.strategy == "sample":
            ctranslate2.set_random_seed(cfg.seed)
        options = self._options(cfg)
        caps = max_lengths(torch.tensor([len(ids) + 1 for ids in src_ids]), cfg.max_len_ratio, cfg.max_len_offset)
        caps = caps.clamp(max=self.max_source_tokens).tolist()  # positions: what the decoder can represent
        order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
        batches = [order[start : start + cfg.batch_size] for start in range(0, len(order), cfg.batch_size)]
        limits = [max(caps[i] for i in idx) for idx in batches]  # one cap per batch: its longest sentence's
        pending = [
            self._submit([src_ids[i] for i in idx], limit, options) for idx, limit in zip(batches, limits, strict=True)
        ]
        out: list[list[list[int]]] = [[] for _ in src_ids]
        for idx, limit, results in zip(batches, limits, pending, strict=True):
            for i, result in zip(idx, results, strict=True):
                result = result.result()
                if caps[i] < limit and any(len(hyp) >= caps[i] - 2 for hyp in result.hypotheses):
                    # it reached its own last step under the batch's longer limit: search it again with its own
                    result = self._submit([src_ids[i]], caps[i], options)[0].result()
                out[i] = [[self.target_ids[tok] for tok in hyp] for hyp in self._ranked(result, cfg, caps[i] - 1)]
        return out

    def _submit(self, sources: list[list[int]], cap: int, options: dict) -> list:
        """One batch queued on the translator, every output within `cap` tokens, EOS included (CTranslate2's
        limit counts the tokens before it); its asynchronous results."""
        return self.translator.translate_batch(
            [self._tokens(ids) for ids in sources], max_decoding_length=cap - 1, asynchronous=True, **options
        )

    def perplexity(self, src_ids: list[list[int]], tgt_ids: list[list[int]], batch_size: int) -> float:
        """Per-target-token perplexity under teacher forcing (subword tokens, EOS included), from CTranslate2's
        token log-probabilities."""
        results = self.translator.score_batch(
            [self._tokens(ids) for ids in src_ids],
            [[self.target_vocab[i] for i in ids] for ids in tgt_ids],
            max_batch_size=batch_size,
            max_input_length=0,
        )
        log_probs = [lp for result in results for lp in result.log_probs]
        return math.exp(-sum(log_probs) / max(len(log_probs), 1))
