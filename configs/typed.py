"""Build typed config dataclasses from plain dicts (YAML, CLI), rejecting unknown keys and wrong types.
Part of the bottom layer: it imports only configs.errors."""

import dataclasses
import typing
from typing import Any

from configs.errors import UserError


def _coerce(value: Any, kind: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin is typing.Union or origin is getattr(__import__("types"), "UnionType", None):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if value is None else _coerce(value, options[0], key)
    if origin is typing.Literal:
        if value not in typing.get_args(kind):
            raise UserError(f"{key} must be one of {list(typing.get_args(kind))}, got {value!r}")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads "1e-3" (no dot) as a string
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif origin in (list, dict) or kind in (list, dict):
        if isinstance(value, origin or kind):
            return value
    else:
        return value
    name = getattr(kind, "__name__", str(kind))
    raise UserError(f"{key} must be a {name}, got {value!r}")


def from_dict(cls, data: dict | None, prefix: str):
    """cls(**data) with each value checked against the field's type; unknown keys are an error."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UserError(
            f"unknown config key {prefix}.{unknown[0]}; valid keys under {prefix}: {', '.join(names)}"
        )
    values = {k: _coerce(v, hints[k], f"{prefix}.{k}") for k, v in data.items()}
    obj = cls(**values)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def check_range(obj, prefix: str, **bounds) -> None:
    """bounds: field=(low, high, low_inclusive); high may be None."""
    for name, (low, high, inclusive) in bounds.items():
        value = getattr(obj, name)
        ok_low = value >= low if inclusive else value > low
        ok_high = high is None or value <= high
        if not (ok_low and ok_high):
            side = ">=" if inclusive else ">"
            upper = f" and <= {high}" if high is not None else ""
            raise UserError(f"{prefix}.{name} must be {side} {low}{upper}, got {value}")
