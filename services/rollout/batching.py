"""Collect concurrent generate requests for a few milliseconds and run them as one batch.

Trajectories call `generate` one turn at a time, each on its own schedule (some wait for a
tool while others are ready); the scheduler gathers whatever is ready into one batch so the
engine decodes them together, and runs the blocking engine work in a thread so the event loop
keeps serving tool calls in the meantime. One batch runs at a time per engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from paretopo.jobs import SamplingParams


@dataclass
class GenerateRequest:
    prompts: Sequence[Sequence[int]]
    sampling: SamplingParams
    stop: tuple[str, ...]
    max_new_tokens: int
    future: asyncio.Future = field(repr=False, default=None)  # type: ignore[assignment]


RunBatch = Callable[[list[GenerateRequest]], list[list]]


class BatchScheduler:
    """`await submit(request)` returns that request's results from `run_batch`."""

    def __init__(self, run_batch: RunBatch, *, max_rows: int, window_s: float) -> None:
        self._run_batch = run_batch
        self._max_rows = max_rows
        self._window_s = window_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: list[GenerateRequest] = []
        self._wakeup: asyncio.Event | None = None
        self._runner: asyncio.Task | None = None

    async def submit(self, request: GenerateRequest) -> list:
        self._bind_loop()
        assert self._wakeup is not None
        request.future = asyncio.get_running_loop().create_future()
        self._queue.append(request)
        self._wakeup.set()
        return await request.future

    def _bind_loop(self) -> None:
        # An engine can outlive an event loop (tests, the evaluation CLI): start a runner in
        # whichever loop is calling now.
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._runner is None or self._runner.done():
            self._loop = loop
            self._queue = [r for r in self._queue if r.future.get_loop() is loop]
            self._wakeup = asyncio.Event()
            self._runner = loop.create_task(self._run(), name="engine-batcher")

    def _take(self) -> list[GenerateRequest]:
        batch, rows = [], 0
        while self._queue and (not batch or rows + len(self._queue[0].prompts) <= self._max_rows):
            request = self._queue.pop(0)
            if request.future.done():  # its caller was cancelled
                continue
            batch.append(request)
            rows += len(request.prompts)
        return batch

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            if self._window_s and sum(len(r.prompts) for r in self._queue) < self._max_rows:
                await asyncio.sleep(self._window_s)
            batch = self._take()
            if not self._queue:
                self._wakeup.clear()
            if not batch:
                continue
            try:
                results = await asyncio.to_thread(self._run_batch, batch)
            except Exception as err:  # the callers get the error; the runner keeps serving
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(err)
                continue
            for request, result in zip(batch, results, strict=True):
                if not request.future.done():
                    request.future.set_result(result)
