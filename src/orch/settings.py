"""Typed settings checked as they are read: the tables of ``config.toml`` and the agent profiles.

A settings class lists its keys in ``FIELDS`` (key -> ``Spec``); ``build(cls, raw, where)`` checks a TOML table
against them: no unknown key, every value of the right type and within its range (never NaN or infinite), and
raises ``Problem`` naming the key and its table otherwise. Plain classes and a few checks, so that reading the
configuration costs a person's command nothing noticeable (a validation framework took longer to import than the
rest of `orch status` took to run).
"""

from __future__ import annotations

import math

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Self, TypeVar

    S = TypeVar("S", bound="Settings")


class Problem(ValueError):
    """One thing wrong in a table: ``loc`` is the path of keys (table names, then the key), ``unknown`` says the key
    is not a setting of its table."""

    def __init__(self, loc: tuple[str, ...], message: str, unknown: bool = False) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.unknown = unknown


class Spec:
    """A key's type (``text``, ``flag``, ``integer``, ``number``, ``words``, ``names`` (a table of strings),
    ``choice``, ``table``, ``tables``), default, range and further check."""

    __slots__ = ("check", "choices", "costly", "default", "hi", "lo", "lo_open", "of", "shape")

    def __init__(self, shape: str, default: object = None, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, choices: tuple[str, ...] = (), of: type | None = None,
                 check: Callable[[object], object] | None = None, costly: bool = False) -> None:
        self.shape, self.default, self.lo, self.hi, self.lo_open = shape, default, lo, hi, lo_open
        self.choices, self.of, self.check, self.costly = choices, of, check, costly

    def fresh(self) -> object:
        """The default, a new copy for the mutable kinds."""
        if self.shape.startswith("words"):
            return list(self.default or ())  # type: ignore[call-overload]
        if self.shape in ("names", "tables"):
            return dict(self.default or {})  # type: ignore[call-overload]
        if self.shape == "table":
            assert self.of is not None
            return self.of()
        return self.default

    def read(self, value: object, loc: tuple[str, ...], costly: bool = True) -> object:
        shape = self.shape
        if shape == "text":
            if not isinstance(value, str):
                raise Problem(loc, f"must be a string, not {_what(value)}")
        elif shape == "flag":
            if not isinstance(value, bool):
                raise Problem(loc, f"must be true or false, not {_what(value)}")
        elif shape in ("integer", "number"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (shape == "integer"
                                                                               and not isinstance(value, int)):
                raise Problem(loc, f"must be {'a whole number' if shape == 'integer' else 'a number'}, "
                                   f"not {_what(value)}")
            if not math.isfinite(value):
                raise Problem(loc, f"must be a finite number, not {value}")
            value = float(value) if shape == "number" else value
            if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
                raise Problem(loc, f"must be {'more than' if self.lo_open else 'at least'} {_num(self.lo)} "
                                   f"(it is {_num(value)})")
            if self.hi is not None and value > self.hi:
                raise Problem(loc, f"must be at most {_num(self.hi)} (it is {_num(value)})")
        elif shape == "choice":
            if value not in self.choices:
                raise Problem(loc, f"must be one of {', '.join(repr(c) for c in self.choices)}, not {value!r}")
        elif shape in ("words", "words_or_text"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise Problem(loc, f"must be a list of strings, not {_what(value)}")
            value = list(value)
        elif shape == "names":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise Problem(loc, f"must be a table of strings, not {_what(value)}")
            value = dict(value)
        elif shape == "table":
            assert self.of is not None
            value = build(self.of, value, loc)
        elif shape == "tables":
            assert self.of is not None
            if not isinstance(value, dict):
                raise Problem(loc, f"must be a table of tables, not {_what(value)}")
            value = {name: build(self.of, each, (*loc, name), name=name) for name, each in value.items()}
        if self.check is not None and (costly or not self.costly):
            try:
                value = self.check(value)
            except ValueError as exc:
                raise Problem(loc, str(exc)) from None
        return value


def text(default: str = "", check: Callable[[object], object] | None = None, costly: bool = False) -> Spec:
    return Spec("text", default, check=check, costly=costly)


def flag(default: bool) -> Spec:
    return Spec("flag", default)


def integer(default: int, lo: int, hi: int) -> Spec:
    return Spec("integer", default, lo, hi)


def number(default: float, lo: float, hi: float, lo_open: bool = False) -> Spec:
    return Spec("number", default, lo, hi, lo_open)


def choice(default: str, *choices: str) -> Spec:
    return Spec("choice", default, choices=choices)


def words(check: Callable[[object], object] | None = None, split: bool = False) -> Spec:
    return Spec("words_or_text" if split else "words", (), check=check)


def names() -> Spec:
    return Spec("names", {})


def table(of: type) -> Spec:
    return Spec("table", of=of)


def tables(of: type) -> Spec:
    return Spec("tables", {}, of=of)


class Settings:
    """The base of a settings class: its keys are ``FIELDS``; ``given`` is the set of keys set (not defaults).
    Made from Python values (``AgentProfile(command=[...])``) or from a TOML table (``build``), checked either way."""

    FIELDS: dict[str, Spec] = {}
    ATTRS: dict[str, str] = {}  # a key whose attribute is named otherwise (``validate`` -> ``validate_``)
    given: frozenset[str]

    def __init__(self, **values: object) -> None:
        _fill(self, {self._key(k): v for k, v in values.items()}, ())

    @classmethod
    def builtin(cls, **values: object) -> Self:
        """Settings orch itself defines (a built-in agent profile): types checked, the costly checks (compiling
        regular expressions, loading every agent to know the kinds) left to the test suite, which runs them on
        every built-in."""
        made = cls.__new__(cls)
        _fill(made, {cls._key(k): v for k, v in values.items()}, (), costly=False)
        return made

    @classmethod
    def _key(cls, attr: str) -> str:
        for key, name in cls.ATTRS.items():
            if name == attr:
                return key
        return attr

    def checked(self) -> None:
        """Checks across keys, after each key was checked (raise ValueError)."""

    def copy(self, **changes: object) -> Self:
        """A copy (lists and tables copied too) with ``changes`` (checked)."""
        made = type(self).__new__(type(self))
        for key in self.FIELDS:
            attr = self.ATTRS.get(key, key)
            object.__setattr__(made, attr, _copied(getattr(self, attr)))
        made.given = self.given
        if changes:
            values = {self._key(k): v for k, v in changes.items()}
            _fill(made, values, (), keep=True)
            made.given = self.given | frozenset(values)
        return made

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, self.ATTRS.get(k, k))!r}" for k in self.FIELDS)
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a in (self.ATTRS.get(k, k) for k in self.FIELDS))

    __hash__ = None  # type: ignore[assignment]


def build(cls: type[S], raw: object, loc: tuple[str, ...] = (), name: str | None = None) -> S:
    """``raw`` (a TOML table) checked against ``cls.FIELDS``: the settings object, or ``Problem``."""
    if not isinstance(raw, dict):
        raise Problem(loc, f"must be a table, not {_what(raw)}")
    values = dict(raw)
    if name is not None and "name" in cls.FIELDS:  # a table's own name ([agents.NAME]) is its name
        values["name"] = name
    made = cls.__new__(cls)
    _fill(made, values, loc)
    return made


def _fill(made: Settings, values: dict[str, object], loc: tuple[str, ...], keep: bool = False,
          costly: bool = True) -> None:
    """Check ``values`` (keys of ``FIELDS``) and set them on ``made``; the rest get their defaults (unless
    ``keep``: a copy's changes)."""
    fields = made.FIELDS
    for key in values:
        if key not in fields:
            raise Problem((*loc, key), f"unknown setting {key!r}", unknown=True)
    for key, spec in fields.items():
        if key in values:
            value = values[key]
            if spec.shape == "words_or_text" and isinstance(value, str):
                import shlex

                try:
                    value = shlex.split(value)
                except ValueError as exc:
                    raise Problem((*loc, key), f"cannot be split into words ({exc})") from None
            value = spec.read(value, (*loc, key), costly)
        elif keep:
            continue
        else:
            value = spec.fresh()
        object.__setattr__(made, made.ATTRS.get(key, key), value)
    if not keep:
        made.given = frozenset(values)
    try:
        made.checked()
    except ValueError as exc:
        raise Problem(loc, str(exc)) from None


def _copied(value: object) -> object:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, Settings):
        return value.copy()
    return value


def _what(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value!r}"
    names: dict[type, str] = {str: "a string", list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _num(value: float) -> str:
    return f"{value:g}"
