"""gRPC clients of the tool services, behind one `call` that never raises for tool failures.

A tool service that is down, slow or refuses the request gives the model an error text, as a
real agent would see one (`error: python tool unavailable (deadline exceeded)`), after at
most `timeout_s`; the trajectory goes on and the worker never hangs on a tool.
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass

import grpc

from paretopo.agent_formats import ToolName
from paretopo.tools_format import format_passages
from services.tools.executor.client import ExecutorClient
from services.tools.search.client import SearchClient


@dataclass(frozen=True)
class ToolResult:
    """What the model sees (`text`, unwrapped), whether the call failed, and its latency.

    `error` is true when the call produced no normal result: the service was unreachable,
    slow or refused the request, or the program itself failed (exception, time-out, limit).
    `unavailable` is true when the fault was the service's (unreachable, no answer in time),
    not the model's: the learner leaves such trajectories out of its update.
    """

    text: str
    error: bool
    seconds: float
    unavailable: bool = False


#: Answers about the request itself (the model's doing); any other failure is the service's.
_REFUSALS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _status_words(err: grpc.aio.AioRpcError) -> str:
    return err.code().name.lower().replace("_", " ")


class ToolClients:
    """One client per configured tool service; a tool without a target answers an error."""

    def __init__(self, executor_target: str | None, search_target: str | None, *,
                 timeout_s: float, search_top_k: int) -> None:
        self.timeout_s = timeout_s
        self.search_top_k = search_top_k
        self._executor = ExecutorClient(executor_target) if executor_target else None
        self._search = SearchClient(search_target, timeout_s=timeout_s) if search_target else None

    def with_search_top_k(self, top_k: int | None) -> ToolClients:
        """The same clients (and channels) returning `top_k` passages per search; None or
        the current value returns `self`."""
        if top_k is None or top_k == self.search_top_k:
            return self
        view = copy.copy(self)
        view.search_top_k = top_k
        return view

    async def call(self, tool: ToolName, request: str) -> ToolResult:
        start = time.perf_counter()
        try:
            # The gRPC deadline bounds the call; wait_for is the backstop should a channel
            # ever ignore it (retries included), so the trajectory always moves on.
            text, error = await asyncio.wait_for(self._dispatch(tool, request),
                                                 self.timeout_s + 1.0)
        except grpc.aio.AioRpcError as err:
            refused = err.code() in _REFUSALS
            return ToolResult(self._rpc_error_text(tool, err), True,
                              time.perf_counter() - start, unavailable=not refused)
        except TimeoutError:
            return ToolResult(f"error: {tool} tool unavailable (deadline exceeded)", True,
                              time.perf_counter() - start, unavailable=True)
        return ToolResult(text, error, time.perf_counter() - start)

    @staticmethod
    def _rpc_error_text(tool: ToolName, err: grpc.aio.AioRpcError) -> str:
        if err.code() in _REFUSALS:
            return f"error: {tool} tool refused the request ({err.details()})"
        return f"error: {tool} tool unavailable ({_status_words(err)})"

    async def _dispatch(self, tool: ToolName, request: str) -> tuple[str, bool]:
        if tool is ToolName.PYTHON:
            if self._executor is None:
                return "error: python tool not configured", True
            result = await self._executor.execute(request, timeout_s=self.timeout_s)
            if result.ok:
                return result.stdout, False
            return f"{result.stdout}{result.error_message or result.error}", True
        if self._search is None:
            return "error: search tool not configured", True
        (found,) = await self._search.search([request], top_k=self.search_top_k,
                                             timeout_s=self.timeout_s)
        return format_passages(found.passages), False

    async def close(self) -> None:
        for client in (self._executor, self._search):
            if client is not None:
                await client.close()
