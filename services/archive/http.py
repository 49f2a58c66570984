"""REST adapter of the archive (FastAPI): reads for people and dashboards, token-guarded
writes, health, Prometheus metrics and the live page. Calls the service object only."""

from __future__ import annotations

import hmac
import time
from importlib import resources
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from paretopo.errors import ParetopoError, describe_validation_error
from services.archive import metrics
from services.archive.models import (
    RUN_ID_PATTERN,
    FrontPoint,
    OptimalCallsSummary,
    OutcomeRecord,
    OutcomeReport,
    RunConfig,
    RunInfo,
    RunState,
    Stage,
)
from services.archive.service import ArchiveService

RunIdPath = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="Run id.")]
PromptIdPath = Annotated[str, Path(min_length=1, max_length=256, description="Prompt id.")]
bearer = HTTPBearer(auto_error=False)


class ErrorBody(BaseModel):
    error: str = Field(description="Kind of error, e.g. NotFound.")
    message: str = Field(description="What is wrong, and what to do about it.")


class Front(BaseModel):
    run_id: str
    objectives: list[str]
    points: list[FrontPoint]
    hypervolume: float


class HypervolumePoint(BaseModel):
    step: int
    hypervolume: float
    delta_hv: float


class Hypervolume(BaseModel):
    run_id: str
    hypervolume: float
    reference_point: list[float]
    history: list[HypervolumePoint]


class OptimalCalls(BaseModel):
    prompt_id: str
    optimal_calls: int = Field(description="n*(q); -1 while unknown.")


class StageChange(BaseModel):
    stage: Stage


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": kind, "message": message})


def _token_guard(token: str | None, what: str):
    """A dependency that demands `Authorization: Bearer <token>` when `token` is set."""

    async def guard(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if token is None:
            if what == "write":
                raise _WritesDisabled()
            return
        if creds is None or not hmac.compare_digest(creds.credentials, token):
            raise _BadToken(what)

    return guard


class _WritesDisabled(Exception):
    pass


class _BadToken(Exception):
    def __init__(self, what: str) -> None:
        self.what = what


def create_app(service: ArchiveService, *, write_token: str | None = None,
               read_token: str | None = None) -> FastAPI:
    """Writes need `write_token` (and are refused when none is configured); reads need
    `read_token` only when one is configured."""
    app = FastAPI(title="paretopo archive", version="1",
                  description="Live Pareto archive, n* and hypervolume state of ParetoPO runs.",
                  responses={k: {"model": ErrorBody} for k in (401, 403, 404, 409, 422, 503)})
    read = [Depends(_token_guard(read_token, "read"))]
    write = [Depends(_token_guard(write_token, "write"))]
    _install_handlers(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"model": ErrorBody}})
    async def readyz() -> dict[str, str]:
        await service.ready()
        return {"status": "ready"}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/api/v1/runs", dependencies=read, tags=["runs"])
    async def list_runs() -> list[RunInfo]:
        return await service.list_runs()

    @app.post("/api/v1/runs", dependencies=write, tags=["runs"], status_code=201)
    async def create_run(config: RunConfig) -> RunInfo:
        return await service.create_run(config)

    @app.get("/api/v1/runs/{run_id}", dependencies=read, tags=["runs"])
    async def get_run(run_id: RunIdPath) -> RunInfo:
        return await service.run_info(run_id)

    @app.get("/api/v1/runs/{run_id}/state", dependencies=read, tags=["runs"])
    async def get_state(run_id: RunIdPath) -> RunState:
        """Weights, G, rho, stage, hypervolume and front."""
        return (await service.run_info(run_id)).state

    @app.get("/api/v1/runs/{run_id}/front", dependencies=read, tags=["archive"])
    async def get_front(run_id: RunIdPath) -> Front:
        info = await service.run_info(run_id)
        return Front(run_id=run_id, objectives=info.config.objectives, points=info.state.front,
                     hypervolume=info.state.hypervolume)

    @app.get("/api/v1/runs/{run_id}/hypervolume", dependencies=read, tags=["archive"])
    async def get_hypervolume(run_id: RunIdPath) -> Hypervolume:
        info = await service.run_info(run_id)
        history = [HypervolumePoint(step=r.step, hypervolume=r.hypervolume, delta_hv=r.delta_hv)
                   for r in await service.history(run_id)]
        return Hypervolume(run_id=run_id, hypervolume=info.state.hypervolume,
                           reference_point=info.config.stage1.reference_point, history=history)

    @app.get("/api/v1/runs/{run_id}/history", dependencies=read, tags=["archive"])
    async def get_history(run_id: RunIdPath) -> list[OutcomeRecord]:
        return await service.history(run_id)

    @app.post("/api/v1/runs/{run_id}/outcomes", dependencies=write, tags=["archive"])
    async def report_outcome(run_id: RunIdPath, report: OutcomeReport) -> OutcomeRecord:
        record, _ = await service.report_outcome(run_id, report.step, report.outcome)
        return record

    @app.put("/api/v1/runs/{run_id}/stage", dependencies=write, tags=["runs"])
    async def set_stage(run_id: RunIdPath, change: StageChange) -> RunInfo:
        return await service.set_stage(run_id, int(change.stage))

    @app.get("/api/v1/runs/{run_id}/nstar", dependencies=read, tags=["n*"])
    async def nstar_summary(run_id: RunIdPath) -> OptimalCallsSummary:
        return await service.nstar_summary(run_id)

    @app.get("/api/v1/runs/{run_id}/nstar/{prompt_id}", dependencies=read, tags=["n*"])
    async def nstar_of(run_id: RunIdPath, prompt_id: PromptIdPath) -> OptimalCalls:
        [value] = await service.get_optimal_calls(run_id, [prompt_id])
        return OptimalCalls(prompt_id=prompt_id, optimal_calls=value)

    @app.get("/api/v1/runs/{run_id}/nstar-batch", dependencies=read, tags=["n*"])
    async def nstar_batch(run_id: RunIdPath,
                          prompt_id: Annotated[list[str], Query(max_length=4096)]) -> list[int]:
        return await service.get_optimal_calls(run_id, prompt_id)

    return app


def _static(name: str) -> str:
    return (resources.files("services.archive") / "static" / name).read_text(encoding="utf-8")


class MetricsMiddleware:
    """Count and time every request by route template (a plain ASGI middleware: the
    decorator-style one costs a task switch per request)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            method = f"{scope['method']} {getattr(route, 'path', 'unmatched')}"
            metrics.LATENCY.labels("rest", method).observe(time.perf_counter() - start)
            metrics.REQUESTS.labels("rest", method, str(status)).inc()


def _install_handlers(app: FastAPI) -> None:
    app.add_middleware(MetricsMiddleware)

    @app.exception_handler(ParetopoError)
    async def domain_error(_: Request, err: ParetopoError) -> JSONResponse:
        return _error(err.http_status, type(err).__name__, err.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, "InvalidArgument", describe_validation_error(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, "HTTPError", str(err.detail))

    @app.exception_handler(_WritesDisabled)
    async def writes_disabled(_: Request, __: _WritesDisabled) -> JSONResponse:
        return _error(403, "Forbidden", "writes are disabled: start the archive with "
                      "PARETOPO_ARCHIVE_WRITE_TOKEN set and send 'Authorization: Bearer <token>'")

    @app.exception_handler(_BadToken)
    async def bad_token(_: Request, err: _BadToken) -> JSONResponse:
        return _error(401, "Unauthenticated",
                      f"this {err.what} needs header 'Authorization: Bearer <token>'")
