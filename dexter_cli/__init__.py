"""dexter: learn and control expressive piano performance with diffusion models.

Follows DExter (Zhang et al., 2024): a denoising diffusion model over a
per-note performance codec (p_codec), conditioned on the score (s_codec) and
on interpretable controls (c_codec).
"""

from .errors import DexterError

__version__ = "0.1.0"
__all__ = ["DexterError", "SamplingOptions", "__version__", "evaluate_store", "load_expression", "render_score",
           "run_codec", "train"]

_LAZY = {  # heavy imports (torch, partitura) only when used
    "render_score": ("render", "render_score"),
    "run_codec": ("data.pipeline", "run_codec"),
    "train": ("train", "train"),
    "load_expression": ("engine", "load_expression"),
    "evaluate_store": ("evaluation.runner", "evaluate_store"),
    "SamplingOptions": ("sampling", "SamplingOptions"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(name)
