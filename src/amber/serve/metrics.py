"""Prometheus metrics of ``amber serve`` (exported at ``/metrics`` next to KServe's own)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram


class _Metrics:
    def __init__(self) -> None:
        self.requests = Counter("amber_requests", "Inference requests by model and outcome",
                                ["model", "status"])
        self.latency = Histogram("amber_request_duration_seconds",
                                 "Inference latency (decode, queue, run) by model", ["model"],
                                 buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5,
                                          1, 2, 5, 10))
        self.batch_size = Histogram("amber_batch_size", "Rows per run of a batched model",
                                    ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.queue = Gauge("amber_queue_depth", "Requests waiting for a batch", ["model"])
        self.in_flight = Gauge("amber_in_flight_requests", "Requests being served")
        self.rejected = Counter("amber_rejected_requests",
                                "Requests refused before inference, by reason", ["reason"])
        self.reloads = Counter("amber_model_reloads", "Model files (re)loaded from the model "
                               "directory, by outcome", ["outcome"])

    def observe(self, model: str, status: str, seconds: float) -> None:
        self.requests.labels(model=model, status=status).inc()
        self.latency.labels(model=model).observe(seconds)

    def batch(self, model: str, rows: int) -> None:
        self.batch_size.labels(model=model).observe(rows)

    def queue_depth(self, model: str, n: int) -> None:
        self.queue.labels(model=model).set(n)


METRICS = _Metrics()
