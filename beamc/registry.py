"""Name -> factory registries (timm style): tasks, models, distillers, sources, engines.

Registering the same name twice is an error, so two modules cannot silently shadow each
other; asking for an unknown name lists what is available with a "did you mean".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from beamc.errors import BeamcError, unknown_choice

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, populate: tuple[str, ...] = ()):
        self.kind = kind
        self._items: dict[str, T] = {}
        # Modules whose import registers the built-in entries; imported on first lookup so
        # that importing the registry alone stays cheap (and torch-free).
        self._populate = populate
        self._populated = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"duplicate {self.kind} name '{name}' ({self._items[name]!r} and {obj!r})")
        self._items[name] = obj

    def _ensure_populated(self) -> None:
        if not self._populated:
            self._populated = True
            for module in self._populate:
                importlib.import_module(module)

    def get(self, name: str) -> T:
        self._ensure_populated()
        if name not in self._items:
            raise unknown_choice(self.kind, name, self._items)
        return self._items[name]

    def get_at(self, name: Any, path: str) -> T:
        """`get` for a recipe key: the error names the key path."""
        from beamc.schema import SchemaError

        if not isinstance(name, str):
            raise SchemaError(path, f"{path}: expected a string ({self.kind} name), found {name!r}")
        try:
            return self.get(name)
        except BeamcError as e:
            raise SchemaError(path, f"{path}: {e}") from None

    def names(self) -> list[str]:
        self._ensure_populated()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._ensure_populated()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# Tasks are torch-free objects (numpy preprocessing, metrics, data); their model factories
# import torch lazily. Models register from the tasks' model modules.
TASKS: Registry[Any] = Registry("task", ("beamc.tasks.sub6", "beamc.tasks.vision"))
MODELS: Registry[Callable[..., Any]] = Registry("model", ("beamc.tasks.sub6_models", "beamc.tasks.vision_models"))
DISTILLERS: Registry[Any] = Registry("distillation method", ("beamc.compress.distillers",))
