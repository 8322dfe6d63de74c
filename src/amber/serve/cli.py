"""The ``amber serve`` subcommand (kept apart so ``amber``'s other commands never import
KServe)."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any, TextIO


def add_parser(sub: Any) -> None:
    ps = sub.add_parser("serve", help="serve files on the Open Inference Protocol "
                                      "(docs/serving.md)")
    ps.add_argument("models", nargs="*", metavar="MODEL.amber")
    ps.add_argument("--model-dir", metavar="DIR", help="also serve the .amber files in DIR, "
                    "watched: new or replaced files go live once verified")
    ps.add_argument("--name", help="the served name of the single MODEL (default: its file "
                    "name without .amber)")
    ps.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    ps.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    ps.add_argument("--grpc-port", type=int, default=8081,
                    help="gRPC port (default 8081; 0 turns gRPC off)")
    ps.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="inference threads, one native session each (default: the cores)")
    ps.add_argument("--threads", type=int, default=1,
                    help="intra-op threads per session (default 1)")
    ps.add_argument("--max-batch", type=int, default=1,
                    help="dynamic batching: rows per run (default 1: off)")
    ps.add_argument("--max-delay-ms", type=float, default=2.0,
                    help="dynamic batching: how long a request may wait for others")
    ps.add_argument("--max-request-bytes", type=int, default=64 << 20,
                    help="larger request bodies get 400 (default 64 MiB)")
    ps.add_argument("--max-in-flight", type=int, default=256,
                    help="more concurrent requests get 429 (default 256)")
    ps.add_argument("--timeout", type=float, default=60.0,
                    help="seconds before a request gets 504 (default 60)")
    ps.add_argument("--poll", type=float, default=1.0,
                    help="seconds between scans of --model-dir (default 1)")
    ps.add_argument("--log-level", default="WARNING")


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    from ..errors import AmberError
    from . import ServeOptions, serve

    if not args.models and not args.model_dir:
        raise AmberError("give at least one MODEL.amber or --model-dir DIR")
    if args.name and len(args.models) != 1:
        raise AmberError("--name names a single MODEL; with several files each is served "
                         "under its file name")
    for v, what in ((args.workers, "--workers"), (args.max_batch, "--max-batch"),
                    (args.max_in_flight, "--max-in-flight"), (args.threads, "--threads")):
        if v < 1:
            raise AmberError(f"{what} must be at least 1, got {v}")
    logging.basicConfig(level=args.log_level.upper())
    options = ServeOptions(
        host=args.host, port=args.port, grpc_port=args.grpc_port or None,
        workers=args.workers, threads_per_session=args.threads, max_batch=args.max_batch,
        max_delay_ms=args.max_delay_ms, max_request_bytes=args.max_request_bytes,
        max_in_flight=args.max_in_flight, timeout_s=args.timeout, poll_s=args.poll,
        names={args.models[0]: args.name} if args.name else {})
    serve(list(args.models), args.model_dir, options)
    return 0
