"""`serving.batching.DecodeBatcher`: what queues while the decoder is busy decodes together, each caller gets its
own rows back in order, and a failed decode fails only the requests in that batch."""

from __future__ import annotations

import asyncio
import time

import pytest

from seqforge.serving.batching import DecodeBatcher


def recording_decoder(calls: list[int], seconds: float = 0.05):
    """A decoder that takes `seconds`, records each batch's row count, and fails on a negative id."""

    def decode(rows: list[list[int]]) -> list[str]:
        calls.append(len(rows))
        time.sleep(seconds)
        if any(ids[0] < 0 for ids in rows):
            raise RuntimeError("out of memory")
        return [f"out {ids[0]}" for ids in rows]

    return decode


def test_requests_queued_while_the_decoder_is_busy_decode_together_in_order() -> None:
    calls: list[int] = []

    async def scenario():
        batcher = DecodeBatcher(recording_decoder(calls), max_requests=16, max_wait_s=0.0)
        first = asyncio.create_task(batcher.submit([[0]]))
        await asyncio.sleep(0.01)  # the first request is decoding alone: these 20 queue behind it
        rest = [asyncio.create_task(batcher.submit([[i], [i + 100]])) for i in range(1, 21)]
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(scenario())
    assert first == ["out 0"]
    assert rest == [[f"out {i}", f"out {i + 100}"] for i in range(1, 21)]
    assert calls == [1, 32, 8]  # then 16 requests of 2 rows (the most a batch takes), then the other 4


def test_a_request_waits_up_to_the_batch_wait_for_company() -> None:
    calls: list[int] = []

    async def scenario():
        batcher = DecodeBatcher(recording_decoder(calls, 0.0), max_requests=16, max_wait_s=0.2)
        first = asyncio.create_task(batcher.submit([[1]]))
        await asyncio.sleep(0.05)
        return await asyncio.gather(first, batcher.submit([[2]]))

    assert asyncio.run(scenario()) == [["out 1"], ["out 2"]]
    assert calls == [2]


def test_a_failed_decode_fails_its_batch_only() -> None:
    calls: list[int] = []

    async def scenario():
        batcher = DecodeBatcher(recording_decoder(calls), max_requests=16, max_wait_s=0.0)
        doomed = asyncio.create_task(batcher.submit([[-1]]))
        await asyncio.sleep(0.01)
        later = asyncio.create_task(batcher.submit([[7]]))
        with pytest.raises(RuntimeError, match="out of memory"):
            await doomed
        return await later

    assert asyncio.run(scenario()) == ["out 7"]
    assert calls == [1, 1]
