"""`python -m services.learner --config FILE`: run (or resume) one training run.

Exit codes: 0 done, 2 bad configuration, 3 a dependency or precondition failed (archive or
Redis unreachable, missing model), 130 interrupted. Errors are one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from paretopo.config import ConfigError
from paretopo.errors import ParetopoError


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from services.learner.config import load_run_config

    try:
        config = load_run_config(args.config)
    except ConfigError as exc:
        print(f"learner: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(config.model_dump_json(indent=2))
        return 0
    try:
        return asyncio.run(_run(config, args.quiet))
    except ParetopoError as exc:
        print(f"learner: {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
