"""Writing a study's or report's result as JSON beside its figure (PNG); matplotlib is imported on first use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or an ImportError that says how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'rna-core[plots]' (in a checkout: '.[plots]')") from None
    return plt


def require_plots(command: str) -> None:
    """Before any compute: ``command`` draws figures, so matplotlib must be installed (an ImportError naming the
    extra otherwise, not a failure after the work)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError(f"{command} draws figures with matplotlib, which is not installed: pip install "
                          "'rna-core[plots]' (in a checkout: pip install '.[plots]')")


def save(result: dict, fig: Any, out_dir: str | Path, name: str) -> dict:
    """``out_dir``/``name``.json and .png; returns ``result`` with their paths under ``files``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=120)
    pyplot().close(fig)
    result["files"] = [str(out / f"{name}.json"), str(out / f"{name}.png")]
    return result
