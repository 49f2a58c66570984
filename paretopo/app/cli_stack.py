"""`paretopo up` and `paretopo down`: the whole system as local processes (`paretopo.app.stack`)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from paretopo.app.stack import LocalStack, StackConfig, StackRunning, StackState, stop_recorded

console = Console()

HomeOpt = Annotated[Path, typer.Option("--home", help="Logs, Redis data and the state file.")]


def stack_table(state: StackState) -> Table:
    """Where each service listens, its pid and its log."""
    table = Table(title="paretopo stack", show_lines=False)
    for column in ("service", "pid", "endpoints", "log"):
        table.add_column(column)
    for s in state.services:
        endpoints = "  ".join(f"{k}={v}" for k, v in s.endpoints.items())
        table.add_row(s.name, str(s.pid), endpoints, s.log)
    return table


def stack_config(home: Path, rollout_workers: int | None, free_ports: bool,
                 redis_url: str | None, *, detach: bool = False) -> StackConfig:
    ports = {"archive_grpc_port": 0, "archive_http_port": 0, "executor_port": 0,
             "search_port": 0, "rollout_http_port": 0} if free_ports else {}
    workers = {} if rollout_workers is None else {"rollout_workers": rollout_workers}
    return StackConfig(home=home, redis_url=redis_url, stop_with_parent=not detach,
                       **workers, **ports)


def start_stack(config: StackConfig) -> LocalStack:
    """Start with a spinner naming each service as it turns healthy; exit 1 with the reason."""
    stack = LocalStack(config)
    try:
        with console.status("starting redis ...") as status:
            stack.start(on_ready=lambda name: status.update(f"{name} is healthy; starting next"))
    except StackRunning as exc:
        console.print(f"[yellow]{exc}[/]")
        raise typer.Exit(1) from None
    except (RuntimeError, TimeoutError, OSError) as exc:
        console.print(f"[red]the stack did not come up:[/] {exc}")
        raise typer.Exit(1) from None
    return stack


def up(
    home: HomeOpt = Path("runs/stack"),
    rollout_workers: Annotated[int | None, typer.Option(
        help="Rollout worker processes (default: 2 where there are 2 cores or more).")] = None,
    free_ports: Annotated[bool, typer.Option(help="Pick free ports instead of defaults.")] = False,
    redis_url: Annotated[str | None, typer.Option(help="External Redis (default: embedded).")]
    = None,
    detach: Annotated[bool, typer.Option(help="Leave the stack running and return.")] = False,
) -> None:
    """Start Redis, the archive, the tool services and the rollout workers; wait until healthy."""
    stack = start_stack(stack_config(home, rollout_workers, free_ports, redis_url, detach=detach))
    state = stack.state
    console.print(stack_table(state))
    console.print(f"archive page: [bold]{state.page}[/]   (write token in {home}/stack.json)")
    if detach:
        console.print("detached; stop it with [bold]paretopo down[/]")
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print("running; Ctrl-C stops every service")
    try:
        while not stop.wait(1.0):
            for proc in stack.exited():
                console.print(f"[red]{proc.name} exited[/]; last lines of {proc.log_path}:\n"
                              f"{proc.log_tail(10)}")
                stop.set()
    finally:
        stack.stop()
        console.print("stopped every service")


def down(home: HomeOpt = Path("runs/stack")) -> None:
    """Stop the stack that `paretopo up` started (from any shell)."""
    stopped = stop_recorded(home)
    if not stopped:
        console.print(f"no running stack recorded in {home}")
        return
    console.print(f"stopped: {', '.join(stopped)}")
