"""Pure math (NumPy/SciPy only): fans for every layer kind and activation gains."""

from .fans import KINDS, Fans, fans
from .gains import (
    KNOWN_ACTIVATIONS,
    activation_fn,
    calculate_gain,
    gain,
    gaussian_expectation,
    gaussian_expectations,
    kinks_of,
    second_moment,
)

__all__ = [
    "KINDS",
    "KNOWN_ACTIVATIONS",
    "Fans",
    "activation_fn",
    "calculate_gain",
    "fans",
    "gain",
    "gaussian_expectation",
    "gaussian_expectations",
    "kinks_of",
    "second_moment",
]
