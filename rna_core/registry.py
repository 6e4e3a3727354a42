"""Backend registry: an explicit name -> "module:Class" table, imported only when asked for."""

from __future__ import annotations

import importlib
import importlib.util

from .backend import Backend

BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("rna_core.backends.torch.backend:TorchBackend", "torch"),
    "mindspore": ("rna_core.backends.mindspore.backend:MindSporeBackend", "mindspore"),
}
_cache: dict[tuple[str, tuple], Backend] = {}


def available_backends() -> list[str]:
    """Backends whose framework is installed (checked with find_spec, importing nothing)."""
    out = []
    for name, (target, framework) in BACKENDS.items():
        module = target.split(":")[0]
        try:
            ok = importlib.util.find_spec(framework) is not None and importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            ok = False
        if ok:
            out.append(name)
    return out


def get_backend(name: str | Backend = "torch", **options) -> Backend:
    """The backend called ``name`` (``device="cuda"`` etc. go to its constructor); imports its framework now."""
    if isinstance(name, Backend):
        return name
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}")
    key = (name, tuple(sorted(options.items())))
    if key not in _cache:
        target, framework = BACKENDS[name]
        if importlib.util.find_spec(framework) is None:
            raise ImportError(f"backend {name!r} needs {framework}: pip install 'rna-core[{name}]' (in a checkout: "
                              f"pip install '.[{name}]')")
        module, cls = target.split(":")
        try:
            backend_cls = getattr(importlib.import_module(module), cls)
        except ModuleNotFoundError as e:  # an optional dependency of the backend (e.g. einops for torch)
            raise ImportError(f"backend {name!r} needs the missing package {e.name!r}: "
                              f"pip install 'rna-core[{name}]' (in a checkout: pip install '.[{name}]')") from None
        _cache[key] = backend_cls(**options)
    return _cache[key]
