"""Small decisions of the application and contracts: torch threads from the core count,
stable sampling seeds, and a job's search depth reaching the tool clients."""

from __future__ import annotations

import subprocess
import sys

import pytest

from paretopo.app.demo import DemoOptions
from paretopo.app.stack import StackConfig, default_rollout_workers, torch_threads
from paretopo.jobs import RolloutJob, stable_seed
from services.rollout.tools import ToolClients


def test_processes_share_the_cores_and_get_at_least_one_thread() -> None:
    assert torch_threads(2, cores=2) == 1  # learner + one worker on the 2-core machine
    assert torch_threads(3, cores=2) == 1
    assert torch_threads(2, cores=16) == 8
    assert torch_threads(0, cores=4) == 4


def test_a_local_stack_runs_a_second_worker_where_a_second_core_is() -> None:
    assert default_rollout_workers(cores=1) == 1
    assert default_rollout_workers(cores=2) == default_rollout_workers(cores=16) == 2
    assert StackConfig().rollout_workers == DemoOptions().rollout_workers == (
        default_rollout_workers())


def test_stable_seed_is_the_same_in_another_process() -> None:
    here = stable_seed("calc/val/7", 3)
    code = "from paretopo.jobs import stable_seed; print(stable_seed('calc/val/7', 3))"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "123"}).stdout
    assert int(there) == here and 0 <= here < 2**63
    assert stable_seed("calc/val/7", 4) != here


def test_a_job_names_its_search_depth_and_the_clients_follow_it() -> None:
    job = RolloutJob(job_id="j", run_id="r", prompt_id="p", prompt="q", n_samples=2,
                     search_top_k=1)
    assert RolloutJob.model_validate_json(job.model_dump_json()).search_top_k == 1
    with pytest.raises(ValueError, match="search_top_k"):
        RolloutJob(job_id="j", run_id="r", prompt_id="p", prompt="q", n_samples=2,
                   search_top_k=0)
    clients = ToolClients(None, None, timeout_s=1.0, search_top_k=3)
    assert clients.with_search_top_k(None) is clients
    assert clients.with_search_top_k(1).search_top_k == 1 and clients.search_top_k == 3
