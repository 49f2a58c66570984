"""The services a learner talks to, each a real process on free ports, owned by the tests:
Redis, the archive (gRPC), the Python executor (gRPC, sandboxed) and a rollout worker."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from paretopo.netutil import free_port
from paretopo.process import ManagedProcess
from paretopo.redis_server import EmbeddedRedis

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "lt"


def grpc_serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=1.0)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ok(url: str) -> bool:
    return httpx.get(url, timeout=1.0).status_code == 200


@dataclass
class Stack:
    redis: EmbeddedRedis
    archive: ManagedProcess
    archive_target: str
    archive_http: str
    executor: ManagedProcess
    executor_target: str
    workers: list[ManagedProcess]
    log_dir: Path

    def stop(self) -> None:
        for proc in (*self.workers, self.executor, self.archive):
            proc.stop()
        self.redis.kill()

    def start_worker(self, threads: int = 1) -> ManagedProcess:
        port = free_port()
        env = {"PARETOPO_ROLLOUT_REDIS_URL": self.redis.url,
               "PARETOPO_ROLLOUT_NAMESPACE": NAMESPACE,
               "PARETOPO_ROLLOUT_EXECUTOR": self.executor_target,
               "PARETOPO_ROLLOUT_ENGINE": "torch", "PARETOPO_ROLLOUT_DEVICE": "cpu",
               "PARETOPO_ROLLOUT_HTTP_PORT": str(port),
               "PARETOPO_ROLLOUT_THREADS": str(threads),
               "PARETOPO_ROLLOUT_BLOCK_MS": "100",
               "PARETOPO_ROLLOUT_WORKER_NAME": f"w{len(self.workers)}-{port}"}
        proc = ManagedProcess.python_module("rollout", "services.rollout", cwd=str(REPO),
                                            log_path=self.log_dir / f"rollout-{port}.log",
                                            env=env)
        proc.start()
        self.workers.append(proc)
        proc.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), timeout=120)
        return proc

    def run_config(self, tmp: Path, model_path: Path, **overrides) -> dict:
        """A run configuration (as a dict) wired to this stack; `overrides` replace keys."""
        config = {
            "run_id": "it", "seed": 0, "model_path": str(model_path),
            "output_dir": str(tmp / "out"),
            "data": {"task": "calc", "train_items": 64},
            "group_size": 4, "prompts_per_step": 2, "stage1_steps": 1, "max_staleness": 0,
            "eval": {"every": 2, "prompts": 4, "samples": 1, "at_start": False,
                     "sampling": {"temperature": 0.0, "max_new_tokens": 32,
                                  "max_completion_tokens": 64, "max_tool_calls": 2}},
            "budget": {"max_steps": 2}, "checkpoint_every": 1,
            "backend": {"name": "torch", "threads": 1},
            "sampling": {"max_new_tokens": 32, "max_completion_tokens": 64, "max_tool_calls": 2},
            "group_timeout_s": 120,
            "services": {"redis_url": self.redis.url, "archive": self.archive_target,
                         "archive_token": "tok", "namespace": NAMESPACE},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def start_stack(log_dir: Path, *, workers: int = 1) -> Stack:
    redis = EmbeddedRedis(log_dir / "redis").start()
    grpc_port, http_port, exec_port = free_port(), free_port(), free_port()
    archive = ManagedProcess.python_module(
        "archive", "services.archive", "--grpc-port", str(grpc_port), "--http-port",
        str(http_port), "--redis-url", redis.url, "--write-token", "tok", "--namespace",
        NAMESPACE, cwd=str(REPO), log_path=log_dir / "archive.log")
    executor = ManagedProcess.python_module(
        "executor", "services.tools.executor", "--port", str(exec_port), "--workers", "2",
        cwd=str(REPO), log_path=log_dir / "executor.log")
    stack = Stack(redis, archive, f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}",
                  executor, f"127.0.0.1:{exec_port}", [], log_dir)
    try:
        archive.start()
        executor.start()
        archive.wait_until(lambda: http_ok(f"{stack.archive_http}/readyz"), timeout=60)
        executor.wait_until(lambda: grpc_serving(stack.executor_target), timeout=90)
        for _ in range(workers):
            stack.start_worker()
    except BaseException:
        stack.stop()
        raise
    return stack


def run_learner(config_path: Path, log_path: Path, *, timeout: float = 300,
                ) -> subprocess.CompletedProcess[str]:
    """`python -m services.learner --config FILE` to completion."""
    return subprocess.run([sys.executable, "-m", "services.learner", "--config", str(config_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ}, check=False)
