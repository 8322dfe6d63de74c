"""The settings of ``amber serve`` (no dependencies: the CLI builds them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServeOptions:
    host: str = "0.0.0.0"
    port: int = 8080
    grpc_port: int | None = 8081
    workers: int = 2
    threads_per_session: int = 1
    max_batch: int = 1
    max_delay_ms: float = 2.0
    max_request_bytes: int = 64 << 20
    max_in_flight: int = 256
    timeout_s: float = 60.0
    poll_s: float = 1.0
    names: dict[str, str] = field(default_factory=dict)  # path -> served name
