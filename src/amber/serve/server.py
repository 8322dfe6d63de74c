"""``amber serve``: ``.amber`` files behind KServe's ``ModelServer`` (REST and gRPC on the
Open Inference Protocol, health, Prometheus metrics), with request limits, dynamic
batching and a watched model directory."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import AmberError
from ..model import load
from .metrics import METRICS
from .options import ServeOptions

log = logging.getLogger("amber.serve")


def _import_kserve() -> Any:
    """KServe parses ``sys.argv`` when it is imported; it must not see ours."""
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        import kserve
        from kserve import model_server
    except ImportError as e:
        raise AmberError("amber serve needs KServe: pip install 'amber[serve]'") from e
    finally:
        sys.argv = argv
    return kserve, model_server


def load_models(path: str, name: str, options: ServeOptions,
                executor: concurrent.futures.Executor) -> list[Any]:
    """One served model per entry point of the file at ``path``, after its test vectors
    pass (``AmberError`` otherwise)."""
    from .model import AmberEntryModel, served_names

    program = load(path, threads=options.threads_per_session)
    failed = [r for r in program.verify() if not r.ok]
    if failed:
        first = failed[0]
        raise AmberError(f"{path}: {len(failed)} test vector(s) fail (vector {first.index} "
                         f"of {first.entry}: {first.error or first.errors}); not served")
    version = str(int(os.stat(path).st_mtime_ns))
    batching = ({"executor": executor, "max_batch": options.max_batch,
                 "max_delay_ms": options.max_delay_ms} if options.max_batch > 1 else None)
    return [AmberEntryModel(served, program, entry, executor, version, batching)
            for entry, served in served_names(name, program.entry_points).items()]


class ModelDirectory:
    """Watches a folder of ``.amber`` files: a new or changed file is loaded and verified
    off the serving path, then its models replace the old ones in the repository in one
    step (requests in flight finish on the old objects); a file that fails to load or
    verify is refused and the old version keeps serving; a removed file's models are
    unloaded."""

    def __init__(self, folder: str, repository: Any, options: ServeOptions,
                 executor: concurrent.futures.Executor) -> None:
        self.folder, self.repository = Path(folder), repository
        self.options, self.executor = options, executor
        self.seen: dict[Path, tuple[int, int, int]] = {}
        self.served: dict[Path, list[str]] = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def scan(self) -> None:
        with self.lock:
            present = {p for p in self.folder.glob("*.amber") if p.is_file()}
            for path in sorted(present):
                st = path.stat()
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
                if self.seen.get(path) != stamp:
                    self.seen[path] = stamp
                    self._load(path)
            for path in set(self.served) - present:
                for name in self.served.pop(path):
                    self.repository.models.pop(name, None)
                self.seen.pop(path, None)
                log.info("model file %s removed; its models are unloaded", path.name)

    def _load(self, path: Path) -> None:
        try:
            models = load_models(str(path), path.stem, self.options, self.executor)
        except Exception as e:  # any failure: keep what is serving
            METRICS.reloads.labels(outcome="refused").inc()
            log.error("refused %s: %s", path.name, e)
            return
        new = {m.name: m for m in models}
        self.repository.models.update(new)  # one dict update: atomic for readers
        for gone in set(self.served.get(path, [])) - set(new):
            self.repository.models.pop(gone, None)
        self.served[path] = list(new)
        METRICS.reloads.labels(outcome="loaded").inc()
        log.info("serving %s as %s", path.name, ", ".join(new))

    def watch(self) -> None:
        while not self.stop.wait(self.options.poll_s):
            try:
                self.scan()
            except Exception:  # pragma: no cover - keep watching
                log.exception("model directory scan failed")


async def _validation_error(_request: Any, exc: Exception) -> Any:
    """A JSON body that is not an inference request: 400 (FastAPI would say 422)."""
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=400, content={"error": f"invalid inference request: {exc}"})


def _rest_server(kserve_mod: Any, model_server: Any, server: Any, options: ServeOptions) -> Any:
    from fastapi.exceptions import RequestValidationError
    from kserve.protocol.rest.server import RESTServer

    from .limits import Limits

    rest = RESTServer(model_server.FASTAPI_APP_IMPORT_STRING
                      if hasattr(model_server, "FASTAPI_APP_IMPORT_STRING")
                      else "kserve.model_server:app", server.dataplane,
                      server.model_repository_extension, options.port,
                      grace_period=5, timeout_keep_alive=65)
    rest.config.host = options.host
    model_server.app.add_exception_handler(RequestValidationError, _validation_error)
    model_server.app.add_middleware(Limits, max_request_bytes=options.max_request_bytes,
                                    max_in_flight=options.max_in_flight,
                                    timeout_s=options.timeout_s)
    return rest


async def _grpc(server: Any, options: ServeOptions) -> None:
    """KServe's gRPC front end, listening on ``options.host`` (KServe's own listens on
    every interface)."""
    from concurrent import futures

    from grpc import aio
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
    from kserve.protocol.grpc.servicer import InferenceServicer

    grpc_server = aio.server(
        futures.ThreadPoolExecutor(max_workers=max(4, options.workers)),
        interceptors=(ExceptionToStatusInterceptor(),),
        options=[("grpc.max_receive_message_length", options.max_request_bytes),
                 ("grpc.max_send_message_length", 1 << 30)])
    grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(server.dataplane, server.model_repository_extension), grpc_server)
    host = f"[{options.host}]" if ":" in options.host else options.host
    grpc_server.add_insecure_port(f"{host}:{options.grpc_port}")
    await grpc_server.start()
    await grpc_server.wait_for_termination()


def serve(paths: list[str], model_dir: str | None = None,
          options: ServeOptions | None = None) -> None:
    """Serve the ``.amber`` files ``paths`` (and those in ``model_dir``, watched) until
    interrupted. Each file's ``forward`` is model ``{stem}`` (or ``options.names[path]``)
    and every other entry point ``e`` is ``{stem}.{e}``."""
    options = options or ServeOptions()
    kserve_mod, model_server = _import_kserve()
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=options.workers,
                                                     thread_name_prefix="amber-infer")
    server = kserve_mod.ModelServer(http_port=options.port, workers=1, enable_grpc=False,
                                    enable_latency_logging=False)
    repository = server.registered_models
    for path in paths:
        name = options.names.get(path) or Path(path).stem
        for m in load_models(path, name, options, executor):
            repository.update(m)
    watcher = None
    if model_dir is not None:
        watcher = ModelDirectory(model_dir, repository, options, executor)
        watcher.scan()
        threading.Thread(target=watcher.watch, daemon=True, name="amber-model-dir").start()
    if not repository.get_models() and model_dir is None:
        raise AmberError("amber serve: no model to serve")
    rest = _rest_server(kserve_mod, model_server, server, options)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(executor)
        tasks = [rest.start()]
        if options.grpc_port is not None:
            tasks.append(_grpc(server, options))
        log.info("amber serve: REST on %s:%d%s; models: %s", options.host, options.port,
                 f", gRPC on {options.grpc_port}" if options.grpc_port is not None else "",
                 ", ".join(sorted(repository.get_models())) or "(none yet)")
        await asyncio.gather(*tasks)

    try:
        asyncio.run(main())
    finally:
        if watcher is not None:
            watcher.stop.set()
        executor.shutdown(wait=False, cancel_futures=True)


def describe(paths: list[str], options: ServeOptions) -> str:
    """The served names of ``paths`` (for ``--dry-run`` and the docs)."""
    from .model import served_names

    out = {}
    for path in paths:
        program = load(path)
        name = options.names.get(path) or Path(path).stem
        out[path] = served_names(name, program.entry_points)
    return json.dumps(out, indent=2)


