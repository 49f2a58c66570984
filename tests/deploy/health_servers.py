"""Child-process servers for the health-probe tests.

    python health_servers.py grpc PORT serving|not-serving
    python health_servers.py http PORT        (/ok answers 200, /fail 503, others 404)
"""

from __future__ import annotations

import asyncio
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from paretopo.grpc_util import GrpcServer


async def grpc_main(port: int, serving: bool) -> None:
    server = GrpcServer(lambda _server: [], host="127.0.0.1", port=port, grace_s=0.5)
    await server.start()
    # The standard health service is what is under test: NOT_SERVING is a real state a
    # draining server reports.
    await server.set_serving(serving)
    await asyncio.Event().wait()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = {"/ok": 200, "/fail": 503}.get(self.path, 404)
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args) -> None:
        pass


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "grpc":
        asyncio.run(grpc_main(port, sys.argv[3] == "serving"))
    else:
        ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
