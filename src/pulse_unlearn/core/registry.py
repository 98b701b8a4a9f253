"""One small registry, used by every component kind (scenarios, methods, searches, splits, metrics, attacks, ...).

A registry maps names to components in registration order. Other installed packages add
components without forking through Python entry points: a package declares, in its metadata,

    [project.entry-points."pulse_unlearn.methods"]
    my_method = "my_package.module:MyMethod"

and the registry loads the group's entry points the first time it is read. An entry point
may name the component itself or a module; loading it is what registers it (a class
decorated with ``@METHODS.register`` registers on import), and a loaded object that is not
registered yet is registered under the entry point's name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
import inspect
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from ..errors import PulseError
from .names import unknown_name

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Name -> component, plus the entry points of ``group``, loaded on first read."""

    def __init__(self, kind: str, group: str | None = None, name_of: Callable[[T], str] = lambda c: c.name):
        self.kind, self.group, self.name_of = kind, group, name_of
        self._items: dict[str, T] = {}
        self._loaded = group is None

    def register(self, component: T, name: str | None = None) -> T:
        """Add ``component`` under ``name`` or its own name (usable as a class decorator). A name
        registered twice is refused: a plugin never silently replaces a built-in."""
        name = name or self.name_of(component)
        if name in self._items and self._items[name] is not component:
            raise PulseError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = component
        return component

    def _load_plugins(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as e:  # a broken plugin is named, never a traceback
                raise PulseError(f"plugin {ep.value!r} ({self.group}: {ep.name}) cannot be loaded: "
                                 f"{type(e).__name__}: {e}") from None
            if not inspect.ismodule(obj) and obj not in self._items.values():
                try:
                    name = self.name_of(obj)
                except AttributeError:
                    name = ep.name
                self.register(obj, name)

    def get(self, name: str, default=None):
        self._load_plugins()
        return self._items.get(name, default)

    def __getitem__(self, name: str) -> T:
        self._load_plugins()
        if name not in self._items:
            raise PulseError(unknown_name(self.kind, name, self._items))
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        self._load_plugins()
        return iter(list(self._items))

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._items)

    def __contains__(self, name) -> bool:
        self._load_plugins()
        return name in self._items
