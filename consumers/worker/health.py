"""The worker's HTTP endpoints on the metrics port: ``/metrics``, ``/healthz`` and ``/readyz``.

What a Kubernetes deployment expects:

``/healthz`` (liveness)
    200 while the process serves HTTP. It does not look at Kafka: a broker outage is not cured by
    restarting the worker (the listeners reconnect on their own), so it must not fail liveness.
``/readyz`` (readiness)
    200 when every check holds, 503 otherwise; the body says which (``{"ready": false, "checks":
    {"assigned": false, ...}}``). The checks come from the caller (the worker's metrics,
    :func:`consumers.worker.metrics.readiness`): input partitions assigned, model loaded, threshold
    known. Both bodies also carry ``details`` (e.g. the update listeners' connection state).
anything else
    prometheus-client's exposition of the registry (as before: ``/metrics``, content negotiation, gzip).

One small WSGI app (:func:`health_app`) served by the standard library's ``wsgiref`` in a daemon
thread per request (:func:`serve_http`), so no dependency beyond prometheus-client.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

__all__ = ["HealthServer", "health_app", "serve_http"]

Checks = Callable[[], Mapping[str, bool]]
Details = Callable[[], Mapping[str, Any]]
_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


def health_app(registry: CollectorRegistry, checks: Checks, details: Details | None = None) -> Any:
    """The WSGI app: ``/healthz``, ``/readyz``, and the registry's metrics on every other path."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/").rstrip("/")
        if path not in ("/healthz", "/readyz"):
            return metrics(environ, start_response)
        extra = dict(details()) if details is not None else {}
        if path == "/healthz":
            status, body = "200 OK", {"status": "ok", "details": extra}
        else:
            results = {name: bool(ok) for name, ok in checks().items()}
            ready = all(results.values())
            status = "200 OK" if ready else "503 Service Unavailable"
            body = {"ready": ready, "checks": results, "details": extra}
        data = orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE)
        start_response(status, [*_JSON, ("Content-Length", str(len(data)))])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [data]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: no access log
        pass


class HealthServer(ThreadingMixIn, WSGIServer):
    """A threading WSGI server; :meth:`shutdown` also closes its socket (the port is free after)."""

    daemon_threads = True

    def shutdown(self) -> None:
        super().shutdown()
        self.server_close()


def serve_http(
    port: int,
    registry: CollectorRegistry,
    checks: Checks,
    *,
    host: str = "0.0.0.0",
    details: Details | None = None,
) -> HealthServer:
    """Serve :func:`health_app` on ``host:port`` in a daemon thread; returns the server (``shutdown()``)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class _Server(HealthServer):
        address_family = family

    server = make_server(host, port, health_app(registry, checks, details), _Server, _QuietHandler)
    assert isinstance(server, HealthServer)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
