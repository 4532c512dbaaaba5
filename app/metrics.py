"""Prometheus metrics, one registry per app so several apps (in tests) never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The app's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "embedsearch_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "embedsearch_http_request_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.tokens = Counter(
            "embedsearch_tokens_embedded", "Tokens embedded by the model.", registry=self.registry
        )
        self.batch_size = Histogram(
            "embedsearch_batch_size",
            "Inputs per model batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "embedsearch_queue_depth", "Inputs waiting for the model.", registry=self.registry
        )
