"""lumiere-cli: short videos from a Space-Time U-Net diffusion model, after Lumiere (2024).

What `lumiere t2v` (and every generation command) does is `run([Request(...)])`; for frames in
memory instead of files, `weights.load_model` and `pipeline.generate`. Importing this package is
cheap: torch loads when a model does.
"""

__version__ = "0.1.0"

import importlib

# Where each public name lives; imported on first use, so that the `lumiere` executable, which
# only hands a command to a running server, imports none of it (PEP 562).
_EXPORTS = {
    "Format": "choices", "Sampler": "choices", "Task": "choices",
    "SampleOptions": "config",
    "Listener": "jobs", "Outcome": "jobs", "run": "jobs",
    "InputFiles": "requests", "OutputSpec": "requests", "Request": "requests", "StyleSpec": "requests",
}
__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
