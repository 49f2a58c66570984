"""Per-step metrics of the learner: one `StepMetrics` record per training step, sent to
Prometheus (`/metrics`, with `/healthz`), appended to a JSONL log and handed to `on_step`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

TIMING_KEYS = ("wait", "score", "archive", "update", "publish", "eval", "queue")


class StepMetrics(BaseModel):
    """What one training step did. Time in seconds; `timings` keys are `TIMING_KEYS`:
    wait (blocked on rollouts), score (graders, rewards, advantages), archive (gRPC calls),
    update (log π_old recompute + forward/backward/step), publish (weights + pointer),
    eval (validation, when it ran), queue (enqueue + dequeue + (de)serialisation, the price
    of the service split, measured outside `wait`)."""

    run_id: str
    step: int
    stage: int
    algorithm: str
    policy_version: int
    em: float = Field(description="Mean r_acc over the step's trajectories.")
    tool_calls: float = Field(description="#Tool: mean tool calls per trajectory.")
    r_tool: float = Field(description="Mean r_tool (Eq. 4) of the step's trajectories.")
    objectives: dict[str, float] = Field(description="Mean of each objective column.")
    loss: float
    clip_fraction: float
    approx_kl: float
    entropy: float
    grad_norm: float
    advantage_abs: float = Field(
        0.0, description="Mean |A| over the trajectories trained on (0 when none): the scale "
        "of the update's signal, which differs between Stage 1 and Stage 2 (docs/learner.md).")
    groups: int = Field(description="Groups consumed this step.")
    groups_dropped: int = Field(description="Groups with all-zero advantages (dynamic sampling).")
    groups_stale: int = Field(description="Groups dropped for lagging beyond max_staleness.")
    groups_tool_outage: int = Field(
        0, description="Groups left out of the update because a tool service was down for "
        "one of their calls (also counted in groups_dropped).")
    max_lag: int = Field(description="Largest policy-version lag among the trained groups.")
    tokens: int = Field(description="Generated tokens trained on.")
    weights: list[float]
    rho: float
    hypervolume: float
    eval_objectives: dict[str, float] | None = Field(
        None, description="Validation y_t when this step validated.")
    timings: dict[str, float]
    step_s: float
    elapsed_s: float


class MetricsSink:
    """Prometheus gauges (own registry, so several runs may live in one process), the JSONL
    log and the optional HTTP server."""

    def __init__(self, log_path: Path, *, offset: int = 0,
                 tensorboard_dir: Path | None = None, resumed_step: int | None = None) -> None:
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # A resumed run drops the records written after its checkpoint: each step once.
        with open(log_path, "ab") as fh:
            fh.truncate(offset)
        self.registry = CollectorRegistry()
        r = self.registry
        self.steps = Counter("learner_steps", "Training steps completed", registry=r)
        self.dropped = Counter("learner_groups_dropped", "Zero-advantage groups", registry=r)
        self.stale = Counter("learner_groups_stale", "Groups older than allowed", registry=r)
        self.outage = Counter("learner_groups_tool_outage",
                              "Groups not trained on: a tool service was down", registry=r)
        self.gauges = {name: Gauge(f"learner_{name}", doc, registry=r) for name, doc in (
            ("step", "Last completed step"), ("stage", "Current stage"),
            ("policy_version", "Last published version"), ("em", "Training EM"),
            ("tool_calls", "Mean tool calls"), ("r_tool", "Mean r_tool"), ("loss", "Loss"),
            ("clip_fraction", "Clip fraction"), ("approx_kl", "Approximate KL"),
            ("entropy", "Token entropy"), ("grad_norm", "Pre-clip gradient norm"),
            ("advantage_abs", "Mean |advantage| of the trained trajectories"),
            ("rho", "rho (Eq. 6)"),
            ("hypervolume", "Archive hypervolume"), ("step_seconds", "Step wall time"))}
        self.weight = Gauge("learner_weight", "Stage-1 weight", ["objective"], registry=r)
        self.timing = Gauge("learner_step_phase_seconds", "Step time by phase", ["phase"],
                            registry=r)
        self._server: ThreadingHTTPServer | None = None
        self._board = None
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            # A resumed run writes the steps after its checkpoint again: purge the old ones.
            purge = None if resumed_step is None else resumed_step + 1
            self._board = SummaryWriter(str(tensorboard_dir), flush_secs=10, purge_step=purge)

    def offset(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def record(self, m: StepMetrics, objective_names: list[str]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(m.model_dump_json() + "\n")
        self.steps.inc()
        self.dropped.inc(m.groups_dropped)
        self.stale.inc(m.groups_stale)
        self.outage.inc(m.groups_tool_outage)
        values = {"step": m.step, "stage": m.stage, "policy_version": m.policy_version,
                  "em": m.em, "tool_calls": m.tool_calls, "r_tool": m.r_tool, "loss": m.loss,
                  "clip_fraction": m.clip_fraction, "approx_kl": m.approx_kl,
                  "entropy": m.entropy, "grad_norm": m.grad_norm,
                  "advantage_abs": m.advantage_abs, "rho": m.rho, "hypervolume": m.hypervolume,
                  "step_seconds": m.step_s}
        for name, value in values.items():
            self.gauges[name].set(value)
        for name, w in zip(objective_names, m.weights, strict=False):
            self.weight.labels(objective=name).set(w)
        for phase, seconds in m.timings.items():
            self.timing.labels(phase=phase).set(seconds)
        if self._board is not None:
            self._write_board(m, values, objective_names)

    def _write_board(self, m: StepMetrics, values: dict[str, float],
                     objective_names: list[str]) -> None:
        board = self._board
        for name, value in values.items():
            if name not in ("step", "policy_version"):
                board.add_scalar(f"train/{name}", value, m.step)
        for name, w in zip(objective_names, m.weights, strict=False):
            board.add_scalar(f"weights/{name}", w, m.step)
        for phase, seconds in m.timings.items():
            board.add_scalar(f"time/{phase}", seconds, m.step)
        for name, value in (m.eval_objectives or {}).items():
            board.add_scalar(f"validation/{name}", value, m.step)

    def serve(self, host: str, port: int) -> int:
        """Serve `/metrics` and `/healthz` from a daemon thread; returns the bound port."""
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
                elif self.path.split("?")[0] == "/healthz":
                    body, ctype, code = b'{"status":"ok"}', "application/json", 200
                else:
                    body, ctype, code = b'{"error":"not found"}', "application/json", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return int(self._server.server_address[1])

    def close(self) -> None:
        if self._board is not None:
            self._board.close()
            self._board = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def read_log(path: Path) -> list[dict]:
    """The records of a metrics log (for tests and reports)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def console_line(m: StepMetrics) -> str:
    """The live one-line summary the CLI prints per step."""
    w = ",".join(f"{x:.2f}" for x in m.weights)
    ev = ""
    if m.eval_objectives:
        ev = " | val " + " ".join(f"{label}={m.eval_objectives[key]:.2f}" for key, label in (
            ("em", "EM"), ("tool_calls", "#Tool"), ("needs_tool/tool_calls", "calls|needed"),
            ("tool_efficiency", "r_tool"), ("length_efficiency", "r_len"))
            if key in m.eval_objectives)
    return (f"step {m.step} S{m.stage} EM={m.em:.2f} #Tool={m.tool_calls:.2f} "
            f"r_tool={m.r_tool:.2f} loss={m.loss:+.3f} HV={m.hypervolume:.3f} w=[{w}] "
            f"rho={m.rho:.2f} drop={m.groups_dropped} {m.step_s:.1f}s{ev}")
