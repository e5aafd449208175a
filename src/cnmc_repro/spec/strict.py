"""Strict loading of plain YAML data into frozen dataclasses.

An unknown key, a missing field or a wrong type is an error naming the file and the key: a spec never
falls back silently to a default it did not ask for.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from cnmc_repro.errors import UserError


class SpecError(UserError):
    pass


@dataclass(frozen=True)
class Range:
    """Where a number of a spec may lie. A field declares it with ``ranged``; ``build`` checks every number the
    field holds (each item of a list or pair, each key and value of a mapping) and names the file and key."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is out
    high_open: bool = False

    def holds(self, value: float) -> bool:
        above = self.low is None or value > self.low or (value == self.low and not self.low_open)
        below = self.high is None or value < self.high or (value == self.high and not self.high_open)
        return above and below

    def __str__(self) -> str:
        low = None if self.low is None else f"{'above' if self.low_open else 'at least'} {self.low:g}"
        high = None if self.high is None else f"{'below' if self.high_open else 'at most'} {self.high:g}"
        return " and ".join(b for b in (low, high) if b)


def ranged(bounds: Range | dict[type, Range], **kwargs: Any) -> Any:
    """A dataclass field whose numbers must lie within ``bounds`` (by type, for a field of ``int | float``)."""
    return dataclasses.field(metadata={"range": bounds}, **kwargs)


# libyaml's parser where PyYAML was built with it (ten times faster than the pure-Python one), with the same
# safe constructor: the same plain data either way
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Any:
    try:
        return yaml.load(Path(path).read_text(), Loader=SAFE_LOADER)
    except FileNotFoundError:
        raise SpecError(f"spec file {path} does not exist") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(f"spec file {path} is not valid YAML{where}") from None


def build(cls: Any, data: Any, file: Path | str, key: str = "") -> Any:
    """Build ``cls`` (a dataclass or a typing form) from ``data``; ``key`` is the dotted path for messages."""
    where = f"{file}: {key or 'top level'}"
    origin = typing.get_origin(cls)
    args = typing.get_args(cls)

    if cls is Any:
        return data
    if origin in (Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return build(option, data, file, key)
            except SpecError as e:
                errors.append(str(e))
        raise SpecError(errors[0] if len(errors) == 1 else f"{where} has the wrong type ({_describe(data)})")
    if origin is Literal:
        if data not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise SpecError(f"{where} is {data!r}; it must be one of {allowed}")
        return data
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise SpecError(f"{where} must be a mapping, not {_describe(data)}")
        hints = _type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = [k for k in data if k not in fields]
        if unknown:
            raise SpecError(f"{where} has an unknown key {_join(key, unknown[0])!r}")
        values = {}
        for name, f in fields.items():
            sub = _join(key, name)
            if name in data:
                values[name] = build(hints[name], data[name], file, sub)
                if "range" in f.metadata:
                    check_range(f.metadata["range"], values[name], file, sub)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SpecError(f"{file}: the required key {sub!r} is missing")
        return cls(**values)
    if origin in (list, tuple):
        if not isinstance(data, list):
            raise SpecError(f"{where} must be a list, not {_describe(data)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(data) != len(args):
                raise SpecError(f"{where} must have {len(args)} items, not {len(data)}")
            return tuple(build(a, d, file, f"{key}[{i}]") for i, (a, d) in enumerate(zip(args, data, strict=True)))
        item = args[0] if args else Any
        items = [build(item, d, file, f"{key}[{i}]") for i, d in enumerate(data)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(data, dict):
            raise SpecError(f"{where} must be a mapping, not {_describe(data)}")
        kt, vt = args if args else (Any, Any)
        return {build(kt, k, file, key): build(vt, v, file, _join(key, str(k))) for k, v in data.items()}
    if cls is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise SpecError(f"{where} must be a number, not {_describe(data)}")
        return float(data)
    if cls is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise SpecError(f"{where} must be a whole number, not {_describe(data)}")
        return data
    if cls in (str, bool):
        if not isinstance(data, cls):
            raise SpecError(f"{where} must be a {cls.__name__}, not {_describe(data)}")
        return data
    raise TypeError(f"no rule to build {cls!r}")


def field_range(cls: type, name: str) -> Range | dict[type, Range]:
    """The range a dataclass field declares (``ranged``)."""
    return next(f.metadata["range"] for f in dataclasses.fields(cls) if f.name == name)


def check_range(bounds: Range | dict[type, Range], value: Any, file: Path | str, key: str) -> None:
    """Every number in ``value`` within ``bounds``, else a SpecError naming the file and the key."""
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_range(bounds, item, file, f"{key}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            check_range(bounds, k, file, key)
            check_range(bounds, item, file, _join(key, str(k)))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        r = bounds.get(type(value)) if isinstance(bounds, dict) else bounds
        if r is not None and not r.holds(value):
            raise SpecError(f"{file}: {key} is {value!r}; it must be {r}")


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types, resolved once (``typing.get_type_hints`` evaluates every annotation)."""
    return typing.get_type_hints(cls)


def to_plain(obj: Any) -> Any:
    """A dataclass tree back to plain dicts and lists (for storing the resolved spec)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_plain(o) for o in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _describe(data: Any) -> str:
    if data is None:
        return "empty"
    return f"{type(data).__name__} {data!r}" if not isinstance(data, dict | list) else type(data).__name__
