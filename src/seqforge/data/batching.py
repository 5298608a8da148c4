"""Length-bucketed batches under a token budget, sharded across data-parallel workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from seqforge.data.tokenizer import BOS, EOS, PAD


def padded_width(length: int | np.ndarray, multiple: int) -> int | np.ndarray:
    """A batch's padded width for its longest sequence of `length` tokens (EOS or BOS added), rounded up to
    `multiple`; `length` itself for 1 (the cost `token_batches` has always counted). Elementwise on arrays."""
    return length if multiple == 1 else -(-(length + 1) // multiple) * multiple


def token_batches(lengths: np.ndarray, batch_tokens: int, order: np.ndarray, multiple: int = 1) -> list[list[int]]:
    """Group indices (visited in `order`, sorted by length) so each padded batch fits the budget.

    A batch's cost is ``size * (longest source + longest target)``, their widths rounded up to `multiple`
    (`padded_width`); one over-long example still forms a batch of its own.
    """
    batches, current, max_src, max_tgt = [], [], 0, 0
    widths = padded_width(lengths[order], multiple)
    src_lens, tgt_lens = widths[:, 0].tolist(), widths[:, 1].tolist()
    for i, src, tgt in zip(order.tolist(), src_lens, tgt_lens, strict=True):
        new_src, new_tgt = max(max_src, src), max(max_tgt, tgt)
        if current and (len(current) + 1) * (new_src + new_tgt) > batch_tokens:
            batches.append(current)
            current, new_src, new_tgt = [], src, tgt
        current.append(i)
        max_src, max_tgt = new_src, new_tgt
    if current:
        batches.append(current)
    return batches


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Sorts by length (random tie order per epoch), packs by token budget, shuffles batches.

    With `even=True` (training) every rank gets the same number of batches, as DDP requires;
    validation shards without padding, so every example is scored exactly once. With `multiple` > 1 (GPUs:
    kernels and attention graphs reused) widths round up to it and pairs sort by those widths, so batches come
    in few shapes: in each (source, target) width bucket every batch but its last has the same size.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_tokens: int,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        even: bool = True,
        multiple: int = 1,
    ) -> None:
        self.lengths, self.batch_tokens, self.shuffle, self.seed = lengths, batch_tokens, shuffle, seed
        self.multiple = multiple
        self.rank, self.world_size, self.even = rank, world_size, even
        self.epoch = 0
        self.start = 0  # batches of the epoch to skip once, when a run resumes mid-epoch
        self._cached: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, start: int) -> None:
        """The next iteration yields epoch `epoch`'s batches from batch `start` on (len() stays the epoch's)."""
        self.epoch, self.start = epoch, start

    def _batches(self) -> list[list[int]]:
        if self._cached is None or self._cached[0] != self.epoch:  # len() and iter() of one epoch agree
            self._cached = (self.epoch, self._plan())
        return self._cached[1]

    def _plan(self) -> list[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        n = len(self.lengths)
        tiebreak = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.multiple == 1:
            keys = self.lengths.sum(axis=1)
        else:  # by width bucket: source width first, then target width
            buckets = padded_width(self.lengths, self.multiple) // self.multiple
            keys = buckets[:, 0] * (buckets[:, 1].max() + 1) + buckets[:, 1]
        order = tiebreak[np.argsort(keys[tiebreak], kind="stable")]
        batches = token_batches(self.lengths, self.batch_tokens, order, self.multiple)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if not self.even and len(batches) < self.world_size:  # a tiny validation set: every rank needs a batch
            batches = [[i] for batch in batches for i in batch]
        if self.even and len(batches) % self.world_size:
            batches += batches[: self.world_size - len(batches) % self.world_size]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        start, self.start = self.start, 0
        return iter(self._batches()[start:])

    def __len__(self) -> int:
        return len(self._batches())


class ResumableLoader(DataLoader):
    """Training batches whose place in the epoch Lightning saves in every checkpoint and restores on
    resume (its `state_dict` / `load_state_dict` protocol): a run resumed from a mid-epoch checkpoint
    goes on with the batch after it, not with its epoch's first batch again (the OpenNMT-py #2006 /
    fairseq #5387 failure), and with that epoch's shuffle."""

    def __init__(
        self, data: Dataset, sampler: TokenBudgetBatchSampler, trained: Callable[[], int], pin_memory: bool = False
    ) -> None:
        collate_fn = partial(collate, multiple=sampler.multiple)
        super().__init__(data, batch_sampler=sampler, collate_fn=collate_fn, pin_memory=pin_memory)
        self.trained = trained  # batches of the current epoch already trained on (the trainer's count)

    def state_dict(self) -> dict[str, int]:
        sampler, done = self.batch_sampler, self.trained()
        if done >= len(sampler):  # saved at the epoch's end: go on with the next epoch
            return {"epoch": sampler.epoch + 1, "batches": 0}
        return {"epoch": sampler.epoch, "batches": done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.resume(state["epoch"], state["batches"])


def bleu_sample(rows: int, size: int | None) -> np.ndarray | None:
    """Which of a validation split's `rows` the in-training BLEU decodes (`train.eval_bleu_sentences`): a mask of
    `size` rows drawn once (seeded: the same rows at every evaluation and in every worker); None: all of them."""
    if size is None or size >= rows:
        return None
    mask = np.zeros(rows, dtype=bool)
    mask[np.random.default_rng(0).choice(rows, size, replace=False)] = True
    return mask


def pad(rows: list[list[int]], multiple: int = 1) -> Tensor:
    """Rows of ids right-padded with PAD to the longest one's length, rounded up to `multiple`."""
    longest = max(len(r) for r in rows)
    out = torch.full((len(rows), -(-longest // multiple) * multiple), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def collate(examples: list[dict], multiple: int = 1) -> dict[str, Tensor]:
    """Source ids + EOS; decoder input BOS + target; decoder output target + EOS; widths padded to `multiple`."""
    src = [ex["src_ids"] + [EOS] for ex in examples]
    batch = {
        "src": pad(src, multiple),
        "src_lens": torch.tensor([len(s) for s in src]),
        "index": torch.tensor([ex["index"] for ex in examples]),
    }
    if "tgt_ids" in examples[0]:
        batch["tgt_in"] = pad([[BOS] + ex["tgt_ids"] for ex in examples], multiple)
        batch["tgt_out"] = pad([ex["tgt_ids"] + [EOS] for ex in examples], multiple)
    return batch
