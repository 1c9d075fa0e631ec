"""The gateway's Prometheus metrics (prometheus-client), one registry per gateway (``GET /metrics``).

Labels: ``workload`` (the OpenAI model id), ``version`` (the model version that answered), ``tenant``. Latency
buckets reach from 1 ms (the gateway's own overhead) to 2 minutes (a long CPU generation).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
REQ = ("workload", "version", "tenant")


class GatewayMetrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "flywheel_requests", "Requests by endpoint and HTTP status.", ["endpoint", "status", *REQ], registry=r
        )
        self.latency = Histogram(
            "flywheel_request_latency_seconds",
            "Request latency, first byte in to last byte out.",
            ["endpoint", *REQ],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "flywheel_time_to_first_token_seconds",
            "Time from the request to the first generated token.",
            list(REQ),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "flywheel_gateway_overhead_seconds",
            "Time spent in the gateway outside the engine (auth, rate limits, capture).",
            ["workload"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=r,
        )
        self.prompt_tokens = Counter("flywheel_prompt_tokens", "Prompt tokens.", list(REQ), registry=r)
        self.completion_tokens = Counter("flywheel_completion_tokens", "Generated tokens.", list(REQ), registry=r)
        self.cache = Counter(
            "flywheel_cache_lookups", "Response-cache lookups by result.", ["workload", "result"], registry=r
        )
        self.guard_blocks = Counter(
            "flywheel_guard_blocks", "Requests or answers a rail blocked.", ["workload", "rail"], registry=r
        )
        self.guard_seconds = Histogram(
            "flywheel_guard_seconds",
            "Time each rail takes per request (injection, topic, moderation, fact_check; rag: the retrieval).",
            ["workload", "rail"],
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
            registry=r,
        )
        self.feedback = Counter(
            "flywheel_feedback",
            "Feedback by kind (positive, negative, correction, duplicate).",
            ["workload", "version", "kind"],
            registry=r,
        )
        self.pii = Counter(
            "flywheel_pii_masked", "PII findings masked by the PII rail.", ["workload", "where", "entity"], registry=r
        )
        self.rate_limited = Counter(
            "flywheel_rate_limited", "Requests refused with 429.", ["tenant", "limit"], registry=r
        )
        self.errors = Counter(
            "flywheel_errors", "Failed requests by OpenAI error type.", ["endpoint", "type"], registry=r
        )
        self.served_version = Gauge(
            "flywheel_served_version", "The model version each workload serves.", ["workload"], registry=r
        )

    def watch(self, name: str, doc: str, read: Callable[[], dict[str, float]], label: str = "workload") -> None:
        """A gauge read at scrape time (queue depth per workload, outbox pending)."""

        class _Collector:
            def collect(self):
                g = GaugeMetricFamily(name, doc, labels=[label])
                for k, v in read().items():
                    g.add_metric([k], v)
                yield g

        self.registry.register(_Collector())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
