"""Domain errors that carry both their gRPC status and their HTTP status.

Services raise these from their plain service objects; one gRPC interceptor
(`paretopo.grpc_util.DomainErrorInterceptor`) and one FastAPI exception handler map them, so
a client always gets a clear message and the right code, never an internal error for bad input.
"""

from __future__ import annotations

import grpc


class ParetopoError(Exception):
    """Base class. The message must name what is wrong and, where it helps, what to do."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    http_status: int = 500

    @property
    def message(self) -> str:
        return str(self)


class InvalidArgument(ParetopoError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 422


class NotFound(ParetopoError):
    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class AlreadyExists(ParetopoError):
    grpc_code = grpc.StatusCode.ALREADY_EXISTS
    http_status = 409


class FailedPrecondition(ParetopoError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 409


class Unauthenticated(ParetopoError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401


class ResourceExhausted(ParetopoError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429


class Unavailable(ParetopoError):
    """A dependency (Redis, a worker pool) is down; the caller may retry later."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


def describe_validation_error(err: Exception) -> str:
    """One line per problem of a pydantic ValidationError: `field.path: message`."""
    errors = getattr(err, "errors", None)
    if errors is None:
        return str(err)
    parts = []
    for item in errors():
        where = ".".join(str(p) for p in item.get("loc", ())) or "value"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)
