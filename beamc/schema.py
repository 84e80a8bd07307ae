"""TOML tables -> frozen dataclasses, with errors a user can act on.

Used by recipes (beamc.recipe) and hardware profiles (beamc.export.profiles). A schema is a
frozen dataclass whose fields are declared with `opt(...)`: a default, a one-line doc (used
by `beamc recipes schema`) and optional bounds/choices. Parsing reports

    <file>: unknown key 'distill.temprature' (did you mean 'distill.temperature'?)
    <file>: train.epochs: expected an integer >= 1, found 0

and never guesses: unknown keys, wrong types and out-of-range values are all errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import types
import typing
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import MISSING, dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from beamc.errors import BeamcError, did_you_mean


class SchemaError(BeamcError):
    """A recipe/profile value error; `path` is the dotted key it concerns."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path
        self.detail = message

    def located(self, src: str) -> SchemaError:
        err = SchemaError(self.path, f"{src}: {self.detail}")
        err.detail = self.detail
        return err


# While `collect_problems()` is active, the checks below record each SchemaError and go on
# (a bad field keeps its default) so that `beamc recipes validate` lists every problem of a
# file; otherwise, as for `distill` and `load_recipe`, the first problem raises.
_problems: ContextVar[list[SchemaError] | None] = ContextVar("beamc_schema_problems", default=None)


@contextlib.contextmanager
def collect_problems() -> Iterator[list[SchemaError]]:
    """Record schema problems instead of raising the first; yields the list they go to."""
    found: list[SchemaError] = []
    token = _problems.set(found)
    try:
        yield found
    finally:
        _problems.reset(token)


@contextlib.contextmanager
def _raising() -> Iterator[None]:
    """Raise again inside this block even while collecting (trying alternatives of a union)."""
    token = _problems.set(None)
    try:
        yield
    finally:
        _problems.reset(token)


def problem(err: SchemaError) -> None:
    """Raise `err`, or record it (once) and return while collect_problems() is active."""
    found = _problems.get()
    if found is None:
        raise err
    if all(str(e) != str(err) for e in found):
        found.append(err)


def recorded_problems() -> list[SchemaError] | None:
    """The problems recorded so far while collect_problems() is active, else None."""
    return _problems.get()


def opt(default: Any = MISSING, *, doc: str = "", ge: float | None = None, gt: float | None = None,
        le: float | None = None, lt: float | None = None, factory: Any = MISSING) -> Any:
    """A schema field: default, documentation and bounds in one place."""
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "table", tuple: "array"}.get(type(value), type(value).__name__)


def _fmt(value: Any) -> str:
    return f"{value!r} ({_type_name(value)})"


def describe(tp: Any) -> str:
    """Human description of a type annotation, e.g. 'an integer' or 'one of "adam", "sgd"'."""
    origin = get_origin(tp)
    if tp is Any:
        return "any value"
    if tp is bool:
        return "a boolean"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(f'"{a}"' if isinstance(a, str) else repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return f"an array of {_plural(describe(args[0]))}" if args else "an array"
    if origin in (dict, Mapping):
        return "a table"
    if origin in (Union, types.UnionType):
        parts = [describe(a) for a in get_args(tp) if a is not type(None)]
        return " or ".join(parts)
    if dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def _plural(desc: str) -> str:
    for art in ("an ", "a "):
        if desc.startswith(art):
            word = desc[len(art):]
            return {"integer": "integers", "number": "numbers", "string": "strings",
                    "boolean": "booleans", "table": "tables"}.get(word, word)
    return desc


def _bounds_text(meta: Mapping[str, Any]) -> str:
    parts = []
    for key, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if meta.get(key) is not None:
            parts.append(f"{sym} {meta[key]:g}")
    return " and ".join(parts)


def convert(tp: Any, value: Any, path: str) -> Any:
    """Check `value` against annotation `tp`; return it in canonical form (lists -> tuples)."""
    origin = get_origin(tp)

    def bad() -> SchemaError:
        return SchemaError(path, f"{path}: expected {describe(tp)}, found {_fmt(value)}")

    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if origin is Literal:
        if value not in get_args(tp) or isinstance(value, bool) != any(isinstance(a, bool) for a in get_args(tp)):
            raise SchemaError(path, f"{path}: expected {describe(tp)}, found {_fmt(value)}"
                                    f"{did_you_mean(str(value), [str(a) for a in get_args(tp)])}")
        return value
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(get_args(tp)):
            return None
        errors = []
        for arg in args:
            try:
                with _raising():  # a failed alternative is no problem of the recipe
                    return convert(arg, value, path)
            except SchemaError as e:
                errors.append(e)
        if len(args) == 1:
            raise errors[0]
        raise bad()
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad()
        args = [a for a in get_args(tp) if a is not Ellipsis]
        item_tp = args[0] if args else Any
        return tuple(convert(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise bad()
        val_tp = get_args(tp)[1] if len(get_args(tp)) == 2 else Any
        return {str(k): convert(val_tp, v, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, path)
    raise TypeError(f"schema type {tp!r} at {path} is not supported")


def _check_bounds(value: Any, meta: Mapping[str, Any], tp: Any, path: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        if isinstance(value, tuple):
            for i, v in enumerate(value):
                _check_bounds(v, meta, tp, f"{path}[{i}]")
        return
    ok = all([
        meta.get("ge") is None or value >= meta["ge"],
        meta.get("gt") is None or value > meta["gt"],
        meta.get("le") is None or value <= meta["le"],
        meta.get("lt") is None or value < meta["lt"],
    ])
    if not ok:
        kind = describe(tp)
        if get_origin(tp) in (list, tuple):
            kind = describe(get_args(tp)[0])
        raise SchemaError(path, f"{path}: expected {kind} {_bounds_text(meta)}, found {value!r}")


def fields_of(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls) if f.init}


def parse(cls: type, raw: Any, path: str = "", base: Any = None) -> Any:
    """Build dataclass `cls` from a TOML table, validating every key. Keys the table leaves
    out come from `base` (an instance of `cls`) when given, else from the class defaults."""
    where = path or "top level"
    if not isinstance(raw, Mapping):
        raise SchemaError(path, f"{where}: expected a table, found {_fmt(raw)}")
    known = fields_of(cls)
    for key in raw:
        if key not in known:
            full = f"{path}.{key}" if path else key
            names = [f"{path}.{k}" if path else k for k in known]
            problem(SchemaError(full, f"unknown key '{full}'{did_you_mean(full, names)}"))
    values = {}
    missing = None
    for name, (f, tp) in known.items():
        full = f"{path}.{name}" if path else name
        if name in raw:
            try:
                if dataclasses.is_dataclass(tp) and f.default_factory is not MISSING and isinstance(raw[name], Mapping):
                    # a nested table overrides the instance its field's factory builds, not the
                    # class defaults: the vision task's `data.synth` defaults to camera only, and a
                    # recipe's `[data.synth] sequences = 40` must not bring the radar back (1 MB a frame)
                    value = parse(tp, raw[name], full, base=f.default_factory())
                else:
                    value = convert(tp, raw[name], full)
                _check_bounds(value, f.metadata, tp, full)
            except SchemaError as e:
                problem(e)  # collecting: the field keeps its default and the other keys are checked
                continue
            values[name] = value
        elif base is None and f.default is MISSING and f.default_factory is MISSING:
            missing = SchemaError(full, f"missing required key '{full}' ({f.metadata.get('doc') or describe(tp)})")
            problem(missing)
    if missing is not None:
        raise missing  # recorded already; there is nothing to build the table from
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain TOML-able dict (tuples -> lists, None dropped)."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if v is not None:
                out[f.name] = to_dict(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items() if v is not None}
    return obj


def reference(cls: type, path: str = "", defaults: Any = None) -> list[tuple[str, str, str, str]]:
    """(key, type, default, doc) rows documenting a schema, nested tables flattened. A nested
    table's defaults are those of the instance its field's factory builds (a task may set
    e.g. `data.synth.camera = False` there), `defaults`."""
    rows = []
    for name, (f, tp) in fields_of(cls).items():
        full = f"{path}.{name}" if path else name
        if dataclasses.is_dataclass(tp):
            nested = f.default_factory() if f.default_factory is not MISSING else None
            if defaults is not None:
                nested = getattr(defaults, name)
            rows.extend(reference(tp, full, nested))
            continue
        if defaults is not None:
            value = getattr(defaults, name)
            default = repr(to_dict(value)) if value is not None else "(unset)"
        elif f.default is not MISSING:
            default = repr(to_dict(f.default)) if f.default is not None else "(unset)"
        elif f.default_factory is not MISSING:
            default = repr(to_dict(f.default_factory()))
        else:
            default = "(required)"
        desc = describe(tp)
        bounds = _bounds_text(f.metadata)
        rows.append((full, desc + (f" {bounds}" if bounds else ""), default, f.metadata.get("doc", "")))
    return rows


def check_call_args(fn: Any, args: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Validate keyword arguments for a factory against its signature and annotations."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unannotated factories accept any value
        hints = {}
    params = {n: p for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    out = {}
    for key, value in args.items():
        if key not in params:
            full = f"{path}.{key}"
            names = [f"{path}.{k}" for k in params]
            problem(SchemaError(full, f"unknown key '{full}'{did_you_mean(full, names)}"
                                      f"; {getattr(fn, '__name__', 'this model')} accepts: {', '.join(params) or '(nothing)'}"))
            continue
        tp = hints.get(key, Any)
        try:
            out[key] = convert(tp, value, f"{path}.{key}")
        except SchemaError as e:
            problem(e)
            continue
        if isinstance(out[key], tuple):
            out[key] = list(out[key])
    return out


__all__ = ["SchemaError", "collect_problems", "problem", "recorded_problems", "opt", "parse", "convert", "to_dict", "reference", "check_call_args", "describe",
           "dataclass", "fields_of"]
