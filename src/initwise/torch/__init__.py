"""PyTorch integration: drop-in ``torch.nn.init`` replacements (``initwise.torch.init``)."""

from .init import *  # noqa: F403
from .init import __all__ as _init_all

__all__ = [*_init_all]
