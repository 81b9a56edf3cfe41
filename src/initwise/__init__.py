"""initwise: neural-network weight initialization, exactly right, with the reasons."""

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "register_activation": ("initwise.activations", "register_activation"),
    "unregister_activation": ("initwise.activations", "unregister_activation"),
}


def __getattr__(name: str) -> Any:  # lazy: ``import initwise`` loads nothing else
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'initwise' has no attribute {name!r}")


__all__ = ["__version__", "register_activation", "unregister_activation"]
