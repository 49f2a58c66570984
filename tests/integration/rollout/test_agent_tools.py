"""The agent loop and a worker against real tool servers (executor, search) in child
processes; the model is scripted so that it surely calls the tools."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest
from conftest import KEYS, REPO, publish
from redis.asyncio import Redis
from scripted import ScriptedEngine

from paretopo.agent_formats import TESTBED
from paretopo.jobs import RolloutJob, SamplingParams, encode
from paretopo.results import read_groups
from paretopo.testbed.kbqa import build_world, write_corpus
from services.rollout.agent import AgentLoop
from services.rollout.settings import RolloutSettings
from services.rollout.tools import ToolClients
from services.rollout.worker import RolloutWorker

sys.path.insert(0, str(REPO / "tests" / "integration" / "search"))
from search_servers import build, start_search


def _executor_helpers():
    """The executor tests' own start/stop helpers (their conftest, loaded by path)."""
    spec = importlib.util.spec_from_file_location(
        "executor_conftest", REPO / "tests" / "integration" / "executor" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.start_executor, module.stop


start_executor, stop = _executor_helpers()

pytestmark = pytest.mark.slow
PROMPT = "Q: who?\n"


@pytest.fixture(scope="module")
def kb_search(tmp_path_factory):
    """A BM25 index of the testbed kbqa corpus, served by a real search process."""
    tmp = tmp_path_factory.mktemp("kbqa")
    corpus = tmp / "kbqa.jsonl"
    write_corpus(corpus, 0)
    assert build(corpus, tmp / "index", "--backend", "bm25").returncode == 0
    server = start_search(tmp / "index", tmp)
    yield server
    server.process.stop()


@pytest.fixture
def executor(tmp_path):
    server = start_executor(tmp_path, workers=1)
    yield server
    stop(server.proc)


def first_person() -> tuple[str, str]:
    world = build_world(0)
    person, city = sorted(world.born_in.items())[0]
    return person, city


def test_real_tools_fill_the_blocks(executor, kb_search):
    person, city = first_person()
    engine = ScriptedEngine(PROMPT, ["<python>print(6*7)</python>",
                                     f"<search>{person}</search>", "<answer>42</answer>"])

    async def go():
        tools = ToolClients(executor.target, kb_search.target, timeout_s=20, search_top_k=1)
        try:
            return await AgentLoop(engine, tools, TESTBED).run(PROMPT, 3, SamplingParams())
        finally:
            await tools.close()

    for t in asyncio.run(go()):
        assert "<python>print(6*7)</python><output>42\n</output>" in t.completion_text
        assert f'<information>Doc 1(Title: "{person}") {person} was born in {city}.' \
            in t.completion_text
        assert (t.n_tool_calls, t.n_tool_errors, t.answer) == (2, 0, "42")
        assert t.tool_s > 0


def test_tool_outage_gives_error_outputs_and_the_worker_keeps_serving(
        executor, redis_server, tmp_path):
    """A worker (in-process, scripted model) over real Redis; the executor dies mid-run."""
    settings = RolloutSettings(redis_url=redis_server.url, worker_name="w", http_port=0,
                               tool_timeout_s=2.0, claim_idle_ms=5000)

    def factory(path: str, version: int) -> ScriptedEngine:
        return ScriptedEngine("Q\n", ["<python>print(1+1)</python>", "<answer>2</answer>"],
                              version=version)

    def job(i: int) -> RolloutJob:
        return RolloutJob(job_id=f"j{i}", run_id="r", prompt_id="p", prompt="Q\n", n_samples=2)

    publish(redis_server.url, tmp_path / "policy", "r", 1)

    async def scenario():
        redis = Redis.from_url(redis_server.url)
        tools = ToolClients(executor.target, None, timeout_s=2.0, search_top_k=1)
        worker = RolloutWorker(redis, settings, tools, factory)
        stopping = asyncio.Event()
        running = asyncio.create_task(worker.run(stopping))
        await redis.xadd(KEYS.jobs, {"data": encode(job(0))})
        before = await _one(redis)
        await asyncio.to_thread(stop, executor.proc)  # the executor goes away mid-run
        for i in (1, 2):
            await redis.xadd(KEYS.jobs, {"data": encode(job(i))})
        after = await _one(redis) + await _one(redis)
        stopping.set()
        await running
        await tools.close()
        await redis.aclose()
        return before, after

    async def _one(redis):
        for _ in range(120):
            got = await read_groups(redis, KEYS, "r", "l", 1, 250)
            if got:
                return got
        raise AssertionError("no group came back")

    before, after = asyncio.run(scenario())
    for t in before[0].trajectories:
        assert "<output>2\n</output>" in t.completion_text and t.n_tool_errors == 0
        assert t.n_tool_unavailable == 0
    assert sorted(g.job_id for g in after) == ["j1", "j2"]
    for g in after:
        for t in g.trajectories:
            assert t.n_tool_errors == 1 and t.finish_reason == "answer"
            assert t.n_tool_unavailable == 1  # the service's fault: the learner skips it
            assert "<output>error: python tool unavailable (" in t.completion_text
            assert t.tool_s < 4.0  # the deadline held


def test_search_unavailable_is_an_error_text(tmp_path):
    from paretopo.netutil import free_port

    async def go():
        tools = ToolClients(None, f"127.0.0.1:{free_port()}", timeout_s=1.0, search_top_k=1)
        try:
            return await tools.call(TESTBED.calls[1].tool, "x")
        finally:
            await tools.close()

    result = asyncio.run(go())
    assert result.error and result.text.startswith("error: search tool unavailable (")
    assert result.unavailable and result.seconds < 3.0


def test_a_refused_request_is_the_models_error_not_an_outage(executor):
    async def go():
        tools = ToolClients(executor.target, None, timeout_s=5.0, search_top_k=1)
        try:
            return await tools.call(TESTBED.calls[0].tool, "x" * (300 * 1024))  # over the code cap
        finally:
            await tools.close()

    result = asyncio.run(go())
    assert result.error and not result.unavailable, result.text

