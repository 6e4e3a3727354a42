"""Type checks of configuration dataclasses (recipes, attack specs) against their annotations, before any work.

A field annotated ``int`` takes an int (not a bool, not 1.5, not "abc"); ``float`` takes a finite int or float
(stored as float; an ``eps`` may be +inf: an unbounded minimum-norm attack); ``bool`` takes True/False or the
integers 1/0 (so ``--set layer_free=no`` is an error, never "true"); ``str`` a string; ``X | None`` also None;
``tuple[float, ...]`` a list or tuple of finite numbers.
Errors name the key, the value and what it should be.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from typing import Any

import numpy as np


class ConfigError(ValueError):
    """A configuration value of the wrong type or out of range; the message names the key."""


class UnknownKeyError(ConfigError, KeyError):
    """A name that is not a key (of a recipe, an attack) or not registered (a recipe, a method); a KeyError too,
    whose message reads as a sentence, not as a quoted name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _coerce(value: Any, kind: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key} = {value!r}: " + "; ".join(errors))
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list of numbers, got {value!r}")
        item = typing.get_args(kind)[0]
        return tuple(_coerce(v, item, key) for v in value)
    if kind is bool:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        if isinstance(value, numbers.Integral) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key} must be true or false (or 1 / 0), got {value!r}")
    if kind is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
            return int(value)
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if kind is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
            if not math.isfinite(value) and not (key.rstrip("'").endswith("eps") and value == math.inf):
                raise ConfigError(f"{key} must be a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        raise ConfigError(f"{key} must be a {kind.__name__}, got {value!r}")
    return value


def check_types(obj: Any, where: str) -> None:
    """Check (and normalise: 1 -> True for bools, ints -> floats) every field of the frozen dataclass ``obj``;
    ``where`` prefixes the key in messages (``recipe key``, ``attack``)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        fixed = _coerce(value, hints[f.name], f"{where} {f.name!r}")
        if fixed is not value and not (type(fixed) is type(value) and fixed == value):
            object.__setattr__(obj, f.name, fixed)


def check_range(where: str, key: str, value: float | None, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """``value`` (skipped if None) inside [low, high], with open ends where asked; the message names the key."""
    if value is None:
        return
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "" if low is None else f"{'(' if low_open else '['}{low}"
        hi = "" if high is None else f"{high}{')' if high_open else ']'}"
        bounds = f"in {lo or '(-inf'}, {hi or 'inf)'}"
        raise ConfigError(f"{where} {key!r} must be {bounds}, got {value!r}")


def check_choice(where: str, key: str, value: object, allowed: tuple) -> None:
    """``value`` one of ``allowed``; the message names the key."""
    if value not in allowed:
        raise ConfigError(f"{where} {key!r} must be one of {allowed}, got {value!r}")
