"""One schema per setting: a frozen settings dataclass *is* the schema of its config section.

Each field of a :class:`Settings` subclass is one configuration key: its name is the key, its
type annotation says how a value is read (from TOML, or from a ``HIVE_*`` environment string),
its default is the default, and its :func:`setting` rule says which values are valid. The
config loader (``hive/config.py``) derives everything from these fields, and the dataclass
validates itself on construction, so a value is checked in one place however it was made.
Fields made with :func:`internal` are wiring between actors, not keys.

Types understood: ``bool``, ``int``, ``float``, ``str``, ``tuple[str, ...]`` (a TOML list or a
comma-separated string), ``Literal["a", "b"]``, ``X | None``, and another dataclass (a
sub-table, e.g. ``[actors.gpu_layout.params]``).

The choice of plain dataclasses over msgspec or pydantic-settings: the daemon's settings are a
few dozen scalars, the messages below are already what the operator sees, and a dataclass keeps
the one-line ``field: type = setting(default, lo=...)`` shape without a second model layer.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Literal, get_args, get_origin

__all__ = [
    "MAX_SECONDS",
    "Key",
    "Rule",
    "SettingError",
    "Settings",
    "coerce",
    "internal",
    "keys",
    "seconds",
    "setting",
]


# The longest duration any setting takes: beyond it, timers overflow the platform's time_t.
MAX_SECONDS = 86_400.0


class SettingError(ValueError):
    """A bad value for one key; ``key`` names it, the message says what was expected."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True, slots=True)
class Rule:
    """What values a key takes beyond its type: bounds (``lo``/``hi`` inclusive, ``above``
    exclusive) and whether the value is a secret (never quoted in an error)."""

    lo: float | None = None
    hi: float | None = None
    above: float | None = None
    secret: bool = False


def setting(default: Any = MISSING, *, default_factory: Any = MISSING, lo: float | None = None,
            hi: float | None = None, above: float | None = None, secret: bool = False) -> Any:
    """A configuration key with a rule."""
    rule = Rule(lo, hi, above, secret)
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"setting": rule})
    return dataclasses.field(default=default, metadata={"setting": rule})


def seconds(default: float | None, *, lo: float = 0.0, above: float | None = None) -> Any:
    """A duration key: a number of seconds from ``lo`` (or above ``above``) up to a day."""
    return setting(default, lo=None if above is not None else lo, above=above, hi=MAX_SECONDS)


def internal(default: Any = MISSING, *, default_factory: Any = MISSING) -> Any:
    """A field that is not a configuration key (the name of a sibling, a fixed policy)."""
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"setting": None})
    return dataclasses.field(default=default, metadata={"setting": None})


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a settings class: its name, resolved type, rule and default."""

    name: str
    type: Any
    rule: Rule
    default: Any

    @property
    def table(self) -> type | None:
        """The dataclass of a sub-table key, else None."""
        inner = _unwrap_optional(self.type)
        return inner if isinstance(inner, type) and dataclasses.is_dataclass(inner) else None


def keys(cls: type) -> list[Key]:
    """The configuration keys of a settings dataclass (every field but :func:`internal` ones)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "setting" in f.metadata and f.metadata["setting"] is None:
            continue
        rule = f.metadata.get("setting") or Rule()
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            default = MISSING
        out.append(Key(f.name, hints[f.name], rule, default))
    return out


class Settings:
    """Base of the frozen settings dataclasses: each key's value is checked against its type
    and rule when the object is made. Subclasses with cross-key rules extend
    ``__post_init__`` (calling this one first)."""

    def __post_init__(self) -> None:
        for key in keys(type(self)):
            value = getattr(self, key.name)
            if key.table is not None:
                continue  # a sub-table's class validates itself
            try:
                _check(key.type, key.rule, value, from_text=False)
            except ValueError as exc:
                raise SettingError(key.name, _message(key, exc)) from None


def coerce(key: Key, value: Any, *, from_text: bool) -> Any:
    """``value`` (from TOML, or an environment string when ``from_text``) as the key's type,
    checked against its rule; :class:`SettingError` naming the key otherwise."""
    try:
        return _check(key.type, key.rule, value, from_text=from_text)
    except ValueError as exc:
        raise SettingError(key.name, _message(key, exc)) from None


def _message(key: Key, exc: ValueError) -> str:
    return "expected a string" if key.rule.secret else str(exc)


def _unwrap_optional(tp: Any) -> Any:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _check(tp: Any, rule: Rule, value: Any, *, from_text: bool) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        text_none = from_text and isinstance(value, str) and value.strip() in ("", "none")
        if (value is None or text_none) and type(None) in get_args(tp):
            return None
        return _check(_unwrap_optional(tp), rule, value, from_text=from_text)
    if origin is Literal:
        options = get_args(tp)
        if value not in options:
            raise ValueError(f"expected one of {', '.join(map(str, options))}; got {value!r}")
        return value
    if isinstance(value, str) and not from_text and tp in (bool, int, float):
        # TOML has its own numbers and booleans; port = "80" is a typo worth a word
        raise ValueError(f"expected {_WHAT[tp]}, got the string {value!r} (write it without quotes)")
    if origin is tuple:
        return _strings(value, from_text=from_text)
    if tp is bool:
        return _bool(value)
    if tp is int:
        return _bounded(_int(value), rule, "an integer")
    if tp is float:
        return _bounded(_float(value), rule, "a number")
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    if isinstance(value, tp):
        return value
    raise ValueError(f"expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _int(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise ValueError(f"expected an integer, got {value!r}")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer past the float range
        raise ValueError("expected a finite number") from None
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _bounded(value: Any, rule: Rule, what: str) -> Any:
    lo, hi, above = rule.lo, rule.hi, rule.above
    if what == "an integer" and lo is not None and hi is not None and not lo <= value <= hi:
        raise ValueError(f"expected an integer in [{lo:g}, {hi:g}], got {value}")
    if above is not None and value <= above:
        raise ValueError(f"expected {what} > {above:g}, got {value}")
    if lo is not None and value < lo:
        raise ValueError(f"expected {what} >= {lo:g}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"expected {what} <= {hi:g}, got {value}")
    return value


_WHAT = {bool: "true or false", int: "an integer", float: "a number"}


def _strings(value: Any, *, from_text: bool) -> tuple[str, ...]:
    if isinstance(value, str) and from_text:
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"expected a list of strings, got {value!r}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
    raise ValueError(f"expected true or false, got {value!r}")


