"""`python -m services.learner --config FILE`: run (or resume) one training run.

The run config's `services:` block (Redis, archive, token, namespace, metrics endpoint) may be
overridden by `PARETOPO_LEARNER_*` environment variables, which win over the file
(`services/learner/env.py`).

Under `torchrun --nproc_per_node N` (DeepSpeed backend) rank 0 runs the learner and alone
talks to Redis and the archive and publishes; the other ranks take their share of each update
(`services/learner/ranks.py`).

Exit codes: 0 done, 2 bad configuration, 3 a dependency or precondition failed (archive or
Redis unreachable, missing model), 130 interrupted. Errors are one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import TYPE_CHECKING

from paretopo.config import ConfigError
from paretopo.errors import ParetopoError

if TYPE_CHECKING:
    from services.learner.config import RunConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.learner", description=__doc__)
    parser.add_argument("--config", required=True, help="run configuration YAML")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved configuration and exit")
    parser.add_argument("--quiet", action="store_true", help="no per-step console line")
    return parser.parse_args(argv)


def _one_line(message: str) -> str:
    return " | ".join(line.strip() for line in message.splitlines() if line.strip())


async def _run(config, quiet: bool) -> int:
    from services.learner.loop import train
    from services.learner.metrics import console_line

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)  # finish the step, checkpoint, exit
    summary = await train(config, stop=stop,
                          on_step=None if quiet else lambda m: print(console_line(m), flush=True))
    print(f"learner: run {summary.run_id} ended after step {summary.steps} "
          f"({summary.stopped_by}); policy version {summary.policy_version}", flush=True)
    return 130 if summary.stopped_by == "stop" else 0


def _redacted_json(config: RunConfig) -> str:
    """The resolved config without the archive token (it may come from a Secret)."""
    data = config.model_dump(mode="json")
    if data["services"].get("archive_token"):
        data["services"]["archive_token"] = "***"
    return json.dumps(data, indent=2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from services.learner import ranks
    from services.learner.config import load_run_config
    from services.learner.env import apply_env

    try:
        config = apply_env(load_run_config(args.config))
    except ConfigError as exc:
        print(f"learner: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(_redacted_json(config))
        return 0
    try:
        if ranks.world_size() > 1:  # under torchrun: rank 0 runs the learner, the rest follow
            ranks.init(config.backend)
            if ranks.rank() != 0:
                for sig in (signal.SIGTERM, signal.SIGINT):  # rank 0 ends the run, checkpointed
                    signal.signal(sig, signal.SIG_IGN)
                ranks.follow(config)
                ranks.shutdown()
                ranks.exit_now(0)
                return 0  # not reached
        try:
            code = asyncio.run(_run(config, args.quiet))
        finally:
            ranks.release()
            ranks.shutdown()
        if ranks.world_size() > 1:
            ranks.exit_now(code)
        return code
    except ParetopoError as exc:
        print(f"learner: {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
        if ranks.world_size() > 1:
            ranks.exit_now(3)
        return 3


if __name__ == "__main__":
    sys.exit(main())
