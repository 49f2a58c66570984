"""REST adapter of the archive (FastAPI): reads for people and dashboards, token-guarded
writes, health, Prometheus metrics and the live page. Calls the service object only."""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paretopo.errors import ParetopoError, describe_validation_error
from services.archive import metrics
from services.archive.models import (
    PROMPT_ID_MAX_CHARS,
    RUN_ID_PATTERN,
    FrontPoint,
    OptimalCallsSummary,
    OutcomeRecord,
    OutcomeReport,
    RunConfig,
    RunInfo,
    RunState,
    Stage,
    valid_prompt_id,
)
from services.archive.service import MAX_BATCH, ArchiveService, RunView

RunIdPath = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="Run id.")]
PromptIdPath = Annotated[str, Path(min_length=1, max_length=PROMPT_ID_MAX_CHARS,
                                   description="Prompt id.")]
PromptId = Annotated[str, Field(min_length=1, max_length=PROMPT_ID_MAX_CHARS)]
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


def _error(status: int, kind: str, message: str,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": kind, "message": message},
                        headers=dict(headers) if headers else None)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": ERROR_MEANINGS[code]} for code in codes}


ERROR_MEANINGS = {
    401: "The token is missing or wrong.",
    403: "Writes are disabled (no write token configured).",
    404: "No such run.",
    409: "Conflicts with the stored state (a different config, an old step, a stage going "
         "back).",
    413: "The request body is larger than the configured limit.",
    422: "Invalid argument; the message names the field.",
    500: "The run's stored data is unreadable (written by an older version).",
    503: "Redis is unreachable; retry later.",
}
# The HTTP server (uvicorn) refuses a request line over 64 KiB itself, in plain text; a long
# enough batch of prompt ids in the query string reaches that.
REQUEST_LINE_TOO_LONG: dict[str, Any] = {
    "description": "The request line is over the HTTP server's 64 KiB limit: ask for fewer "
                   "prompt ids per call, or use gRPC GetOptimalCalls.",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _token_guard(token: str, what: str):
    """A dependency that demands `Authorization: Bearer <token>` (it also documents the
    bearer scheme in the OpenAPI document)."""

    async def guard(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        # bytes: compare_digest raises TypeError on non-ASCII str (a header can carry any
        # latin-1 text)
        if creds is None or not hmac.compare_digest(creds.credentials.encode(), token.encode()):
            raise _BadToken(what)

    return guard


async def _writes_disabled() -> None:
    raise _WritesDisabled()


class _WritesDisabled(Exception):
    pass


class _BadToken(Exception):
    def __init__(self, what: str) -> None:
        self.what = what


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _render_run(view: RunView) -> bytes:
    return view.info.model_dump_json().encode()


def _render_state(view: RunView) -> bytes:
    return view.info.state.model_dump_json().encode()


def _render_front(view: RunView) -> bytes:
    info = view.info
    return Front(run_id=info.config.run_id, objectives=info.config.objectives,
                 points=info.state.front,
                 hypervolume=info.state.hypervolume).model_dump_json().encode()


# The reads served from a run's cached view, by path suffix: rendered once per version.
VIEW_RENDERERS: dict[str, Callable[[RunView], bytes]] = {
    "": _render_run, "/state": _render_state, "/front": _render_front}


def render_view(view: RunView, suffix: str) -> bytes:
    return view.memo(suffix, lambda: VIEW_RENDERERS[suffix](view))


class CachedReads:
    """Answer the hot reads ahead of FastAPI and its middleware (this is the app uvicorn
    runs): `GET /api/v1/runs/{id}`, `.../state` and `.../front` from the run's cached view,
    and `GET .../nstar/{prompt_id}` with one Redis read.

    Profiled under 32 readers, FastAPI's routing, parameter validation, dependency solving
    and its middleware stack were the largest part of such a request once the body itself
    was cached. Only the plain success case is answered here, with its metrics noted
    directly: a wrong token, an invalid argument, an unknown or unreadable run or Redis
    being down fall through to the FastAPI route, so errors and documentation keep one
    source. A front the change feed vouches for is answered without a Redis round trip.
    """

    VIEW_PATH = re.compile(r"/api/v1/runs/(" + RUN_ID_PATTERN.strip("^$")
                           + r")(/front|/state)?")
    NSTAR_PATH = re.compile(r"/api/v1/runs/(" + RUN_ID_PATTERN.strip("^$")
                            + r")/nstar/([^/]+)")
    ROUTE = "GET /api/v1/runs/{run_id}"
    NSTAR = "/nstar/{prompt_id}"

    def __init__(self, app: ASGIApp, *, service: ArchiveService,
                 read_token: str | None) -> None:
        self.app = app
        self.service = service
        self.read_token = read_token.encode() if read_token else None
        # metric children bound once: labels() costs a lock and a dict lookup per call
        self.noted = {suffix: (metrics.LATENCY.labels("rest", self.ROUTE + suffix),
                               metrics.REQUESTS.labels("rest", self.ROUTE + suffix, "200"))
                      for suffix in [*VIEW_RENDERERS, self.NSTAR]}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and self._authorized(scope):
            start = time.perf_counter()
            answered = await self._answer(scope["path"])
            if answered is not None:
                route, body = answered
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                latency, requests = self.noted[route]
                latency.observe(time.perf_counter() - start)
                requests.inc()
                return
        await self.app(scope, receive, send)

    async def _answer(self, path: str) -> tuple[str, bytes] | None:
        """(route suffix, response body), or None to let FastAPI answer."""
        if match := self.VIEW_PATH.fullmatch(path):
            run_id, suffix = match.group(1), match.group(2) or ""
            view = self.service.current_front(run_id) if suffix == "/front" else None
            if view is None:
                try:
                    view = await self.service.run_view(run_id, with_known=suffix != "/front")
                except ParetopoError:
                    return None
            return suffix, render_view(view, suffix)
        if (match := self.NSTAR_PATH.fullmatch(path)) and valid_prompt_id(match.group(2)):
            run_id, prompt_id = match.groups()
            try:
                [value] = await self.service.get_optimal_calls(run_id, [prompt_id])
            except ParetopoError:
                return None
            body = OptimalCalls(prompt_id=prompt_id, optimal_calls=value).model_dump_json()
            return self.NSTAR, body.encode()
        return None

    def _authorized(self, scope: Scope) -> bool:
        """Whether the read token (if any) is right; a wrong one goes to the route (401)."""
        if self.read_token is None:
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(),
                                                                           self.read_token)
        return False


def serving_app(service: ArchiveService, *, write_token: str | None = None,
                read_token: str | None = None, max_body_bytes: int = 1 << 20) -> ASGIApp:
    """What the HTTP server runs: the cached reads, then the FastAPI app (`create_app`)."""
    app = create_app(service, write_token=write_token, read_token=read_token,
                     max_body_bytes=max_body_bytes)
    return CachedReads(app, service=service, read_token=read_token)


def create_app(service: ArchiveService, *, write_token: str | None = None,
               read_token: str | None = None, max_body_bytes: int = 1 << 20) -> FastAPI:
    """Writes need `write_token` (and are refused when none is configured); reads need
    `read_token` only when one is configured. Request bodies over `max_body_bytes` get 413,
    and a write's token is checked before its body is read."""
    app = FastAPI(title="paretopo archive", version="1",
                  description="Live Pareto archive, n* and hypervolume state of ParetoPO runs.")
    # Reads carry the bearer scheme (and a 401) in the document only when they need it.
    read = [Depends(_token_guard(read_token, "read"))] if read_token else []
    read_errors = (401,) * bool(read_token) + (404, 422, 500, 503)
    write = [Depends(_token_guard(write_token, "write") if write_token else _writes_disabled)]
    write_errors = (401, 403, 404, 409, 413, 422, 503)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses=_errors(503))
    async def readyz() -> dict[str, str]:
        await service.ready()
        return {"status": "ready"}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse,
             responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}},
                              "description": "Prometheus text exposition."}})
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/api/v1/runs", dependencies=read, tags=["runs"],
             responses=_errors(*(c for c in read_errors if c not in (404, 422))))
    async def list_runs() -> list[RunInfo]:
        """Every readable run; a run whose stored data is unreadable is left out (and
        logged), so it cannot take the listing down."""
        return await service.list_runs()

    @app.post("/api/v1/runs", dependencies=write, tags=["runs"], status_code=201,
              responses=_errors(*write_errors))
    async def create_run(config: RunConfig) -> RunInfo:
        return await service.create_run(config)

    @app.get("/api/v1/runs/{run_id}", dependencies=read, tags=["runs"],
             response_model=RunInfo, responses=_errors(*read_errors))
    async def get_run(run_id: RunIdPath) -> Response:
        return _json(render_view(await service.run_view(run_id), ""))

    @app.get("/api/v1/runs/{run_id}/state", dependencies=read, tags=["runs"],
             response_model=RunState, responses=_errors(*read_errors))
    async def get_state(run_id: RunIdPath) -> Response:
        """Weights, G, rho, stage, hypervolume and front."""
        return _json(render_view(await service.run_view(run_id), "/state"))

    @app.get("/api/v1/runs/{run_id}/front", dependencies=read, tags=["archive"],
             response_model=Front, responses=_errors(*read_errors))
    async def get_front(run_id: RunIdPath) -> Response:
        return _json(render_view(await service.run_view(run_id, with_known=False), "/front"))

    @app.get("/api/v1/runs/{run_id}/hypervolume", dependencies=read, tags=["archive"],
             responses=_errors(*read_errors))
    async def get_hypervolume(run_id: RunIdPath) -> Hypervolume:
        info = await service.run_info(run_id)
        history = [HypervolumePoint(step=r.step, hypervolume=r.hypervolume, delta_hv=r.delta_hv)
                   for r in await service.history(run_id)]
        return Hypervolume(run_id=run_id, hypervolume=info.state.hypervolume,
                           reference_point=info.config.stage1.reference_point, history=history)

    @app.get("/api/v1/runs/{run_id}/history", dependencies=read, tags=["archive"],
             responses=_errors(*read_errors))
    async def get_history(run_id: RunIdPath) -> list[OutcomeRecord]:
        return await service.history(run_id)

    @app.post("/api/v1/runs/{run_id}/outcomes", dependencies=write, tags=["archive"],
              responses=_errors(*write_errors))
    async def report_outcome(run_id: RunIdPath, report: OutcomeReport) -> OutcomeRecord:
        record, _ = await service.report_outcome(run_id, report.step, report.outcome)
        return record

    @app.put("/api/v1/runs/{run_id}/stage", dependencies=write, tags=["runs"],
             responses=_errors(*write_errors))
    async def set_stage(run_id: RunIdPath, change: StageChange) -> RunInfo:
        return await service.set_stage(run_id, int(change.stage))

    @app.get("/api/v1/runs/{run_id}/nstar", dependencies=read, tags=["n*"],
             responses=_errors(*read_errors))
    async def nstar_summary(run_id: RunIdPath) -> OptimalCallsSummary:
        return await service.nstar_summary(run_id)

    @app.get("/api/v1/runs/{run_id}/nstar/{prompt_id}", dependencies=read, tags=["n*"],
             responses=_errors(*read_errors))
    async def nstar_of(run_id: RunIdPath, prompt_id: PromptIdPath) -> OptimalCalls:
        [value] = await service.get_optimal_calls(run_id, [prompt_id])
        return OptimalCalls(prompt_id=prompt_id, optimal_calls=value)

    @app.get("/api/v1/runs/{run_id}/nstar-batch", dependencies=read, tags=["n*"],
             responses={**_errors(*read_errors), 400: REQUEST_LINE_TOO_LONG})
    async def nstar_batch(run_id: RunIdPath,
                          prompt_id: Annotated[list[PromptId], Query(max_length=MAX_BATCH)],
                          ) -> list[int]:
        return await service.get_optimal_calls(run_id, prompt_id)

    _install_handlers(app, write_token=write_token, max_body_bytes=max_body_bytes)
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


class _BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` once a body passes the limit; FastAPI re-raises HTTP exceptions
    met while reading a body, so the handler below turns it into a 413."""


class WriteGuard:
    """Refuse a write without the right token, and any body over the limit, before the body
    is read (FastAPI reads and parses a body before it solves the dependencies that check
    the token, so a huge unauthenticated body would be read into memory first).

    A plain ASGI middleware: reads (GET, HEAD) pass through untouched.
    """

    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute], write_token: str | None,
                 max_body_bytes: int) -> None:
        self.app = app
        self.routes = routes
        self.write_token = write_token
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        if refusal := self._refusal(scope):
            await refusal(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise _BodyTooLarge(413, self._too_large())
            return message

        await self.app(scope, limited_receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        if self._is_write(scope):
            if self.write_token is None:
                return _error(403, "Forbidden", WRITES_DISABLED)
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode(), self.write_token.encode()):
                return _error(401, "Unauthenticated",
                              "this write needs header 'Authorization: Bearer <token>'")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return _error(413, "PayloadTooLarge", self._too_large())
        return None

    def _is_write(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] == Match.FULL for route in self.routes)

    def _too_large(self) -> str:
        return f"request body over {self.max_body_bytes} bytes"


WRITES_DISABLED = ("writes are disabled: start the archive with PARETOPO_ARCHIVE_WRITE_TOKEN "
                   "set and send 'Authorization: Bearer <token>'")


def _install_handlers(app: FastAPI, *, write_token: str | None, max_body_bytes: int) -> None:
    write_routes = [r for r in app.router.routes if isinstance(r, APIRoute)
                    and r.methods & WRITE_METHODS]
    app.add_middleware(WriteGuard, routes=write_routes, write_token=write_token,
                       max_body_bytes=max_body_bytes)
    app.add_middleware(MetricsMiddleware)

    @app.exception_handler(ParetopoError)
    async def domain_error(_: Request, err: ParetopoError) -> JSONResponse:
        return _error(err.http_status, type(err).__name__, err.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, "InvalidArgument", describe_validation_error(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 400:
            # FastAPI's answer to a body that is not even text (bytes that are not UTF-8):
            # an invalid argument like any other malformed body.
            return _error(422, "InvalidArgument", f"request body: {err.detail}")
        if err.status_code == 405:
            # Starlette names only the methods of the first route on the path; the resource
            # supports those of every route on it.
            allow = ", ".join(sorted({m for r in app.router.routes if isinstance(r, APIRoute)
                                      and r.path_regex.match(request.url.path)
                                      for m in r.methods}))
            return _error(405, "MethodNotAllowed",
                          f"{request.method} is not allowed here; allowed: {allow}",
                          {"Allow": allow})
        return _error(err.status_code, "HTTPError", str(err.detail), err.headers)

    @app.exception_handler(_WritesDisabled)
    async def writes_disabled(_: Request, __: _WritesDisabled) -> JSONResponse:
        return _error(403, "Forbidden", WRITES_DISABLED)

    @app.exception_handler(_BadToken)
    async def bad_token(_: Request, err: _BadToken) -> JSONResponse:
        return _error(401, "Unauthenticated",
                      f"this {err.what} needs header 'Authorization: Bearer <token>'")
