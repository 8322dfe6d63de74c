"""``amber serve``: ``.amber`` files as a network service on the Open Inference Protocol
(KServe v2, as NVIDIA Triton, Seldon MLServer and TorchServe speak it), built on KServe's
``ModelServer`` (extra ``amber[serve]``). See docs/serving.md."""

from __future__ import annotations

from .options import ServeOptions


def serve(paths: list[str], model_dir: str | None = None,
          options: ServeOptions | None = None) -> None:
    """Serve ``.amber`` files until interrupted (see :func:`amber.serve.server.serve`)."""
    from .server import serve as _serve

    _serve(paths, model_dir, options)




__all__ = ["ServeOptions", "serve"]
