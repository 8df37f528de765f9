"""Prometheus metrics of the service, in a registry of its own (one per app)."""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.server.paths import documented_path

_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs_started = Counter(
            "evolvent_runs_started",
            "Runs that started executing (a resumed run counts again)",
            ["kind"],
            registry=r,
        )
        self.runs_finished = Counter(
            "evolvent_runs_finished",
            "Runs that stopped executing, by status",
            ["status"],
            registry=r,
        )
        self.run_duration = Histogram(
            "evolvent_run_duration_seconds",
            "Wall time of one execution of a run, by final status",
            ["status"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.runs_running = Gauge("evolvent_runs_running", "Runs executing now", registry=r)
        self.runs_queued = Gauge("evolvent_runs_queued", "Runs waiting for a worker", registry=r)
        self.http_requests = Counter(
            "evolvent_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "evolvent_http_request_duration_seconds",
            "HTTP request latency by route template (until the response started)",
            ["route"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request under its route template (``/v1/runs/{run_id}``), never the
    raw path, so ids don't explode the label set."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()
        elapsed: float | None = None

        async def send_and_watch(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                elapsed = time.perf_counter() - started
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = getattr(scope.get("route"), "path", None) or _template(scope)
            self.metrics.http_requests.labels(route, scope["method"], str(status)).inc()
            took = elapsed if elapsed is not None else time.perf_counter() - started
            self.metrics.http_latency.labels(route).observe(took)


def _template(scope: Scope) -> str:
    """The route of a request answered before routing (a 413 for a declared body size):
    its documented path template, or ``unmatched``."""
    documented = documented_path(scope.get("app"), scope["path"])
    return documented[0] if documented is not None else "unmatched"
