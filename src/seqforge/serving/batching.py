"""Dynamic batching for a decoder: the requests that arrive while it is busy are decoded together next.

A batch forms only when the decoder is free: it takes every request that queued meanwhile (up to
`max_requests`) and, if it has room left, waits at most `max_wait_s` for more. Ray Serve's `@serve.batch`
(ray 2.60) forms its batches eagerly instead — it closes one every `batch_wait_timeout_s` and queues it behind
the one decoding (`_BatchQueue._process_batches`) — so under load its batches stay near one request each:
measured on the smoke model at 32 clients, 1.3 requests per batch while each request waited 1.3 s for its
turn. Here the queue's length is the batch.
"""

import asyncio
from collections.abc import Callable
from itertools import accumulate

Rows = list[list[int]]


class DecodeBatcher:
    """Requests' rows (token ids) -> their outputs, each batch's rows in one call of `decode` (in a thread, so
    the event loop keeps accepting requests); a failed decode fails the requests of that batch only."""

    def __init__(self, decode: Callable[[Rows], list[str]], max_requests: int, max_wait_s: float) -> None:
        self.decode, self.max_requests, self.max_wait_s = decode, max_requests, max_wait_s
        self.queue: asyncio.Queue[tuple[Rows, asyncio.Future]] = asyncio.Queue()
        self.worker: asyncio.Task | None = None

    async def submit(self, rows: Rows) -> list[str]:
        """This request's outputs, one per row, in order, once the batch it joins is decoded."""
        if self.worker is None:  # on the loop of the first request: the replica's own
            self.worker = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((rows, future))
        return await future

    async def _next_batch(self) -> list[tuple[Rows, asyncio.Future]]:
        """The oldest request and those queued behind it, waiting up to `max_wait_s` to fill the batch."""
        batch = [await self.queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while len(batch) < self.max_requests:
            if self.queue.empty():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), remaining))
                except TimeoutError:
                    break
            else:
                batch.append(self.queue.get_nowait())
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            requests = [rows for rows, _ in batch]
            try:
                outputs = await asyncio.to_thread(self.decode, [ids for rows in requests for ids in rows])
            except Exception as err:  # noqa: BLE001 (the callers get it: each request answers for itself)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (rows, future), end in zip(batch, accumulate(len(rows) for rows in requests), strict=True):
                if not future.done():  # a caller that went away
                    future.set_result(outputs[end - len(rows) : end])
