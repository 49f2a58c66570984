"""Health probes of the services: `python -m paretopo.healthcheck grpc HOST:PORT | http URL`.

Exit status 0 when healthy, 1 otherwise (with the reason on stderr): container health checks
and the local launcher use the same two probes.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def grpc_status(target: str, *, service: str = "", timeout_s: float = 2.0) -> str:
    """The standard gRPC health status name of `target` (e.g. "SERVING")."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def grpc_serving(target: str, *, timeout_s: float = 2.0) -> bool:
    """True when `target` answers the health check with SERVING."""
    try:
        return grpc_status(target, timeout_s=timeout_s) == "SERVING"
    except grpc.RpcError:
        return False


def http_ok(url: str, *, timeout_s: float = 2.0) -> bool:
    """True when GET `url` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return 200 <= reply.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("grpc", "http"):
        print("usage: python -m paretopo.healthcheck grpc HOST:PORT | http URL", file=sys.stderr)
        return 2
    kind, target = args
    healthy = grpc_serving(target) if kind == "grpc" else http_ok(target)
    if not healthy:
        print(f"{kind} {target}: not healthy", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
