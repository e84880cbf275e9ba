"""One route for the parts fbloop loads by name (scorers, providers): built-ins and third parties alike.

A part is a name and a `"module:Class"` target. Third-party packages declare theirs as entry points of the
part's group (`fbloop.scorers`, `fbloop.providers`); the built-ins are the same kind of line in a table, so a
source checkout works without re-installing fbloop's metadata. Nothing is imported until a name is asked for
(`load`), so `fbloop --help` stays cheap. A third-party name that clashes with a built-in is ignored: the
built-in wins.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field


class PluginImportError(Exception):
    """A registered target that cannot be loaded: its module does not import, or it names nothing there."""

    def __init__(self, message: str, *, missing_module: bool) -> None:
        super().__init__(message)
        self.message = message
        #: the module (or one of its imports) is missing, as opposed to a wrong attribute
        self.missing_module = missing_module


@dataclass
class PluginGroup:
    """The registered parts of one entry-point group."""

    group: str
    builtins: dict[str, str]
    #: called whenever the set of registered parts changes (the owner's caches of loaded classes)
    on_change: Callable[[], None] = lambda: None
    _registered: dict[str, str] = field(default_factory=dict)

    def installed(self) -> dict[str, str]:
        """Third-party entry points of the group, name -> "module:Class" (metadata only, nothing imported)."""
        return _installed(self.group)

    def targets(self) -> dict[str, str]:
        """Every registered part, name -> "module:Class": built-ins first, then third parties by name."""
        out = dict(self.builtins)
        for name, target in {**self.installed(), **self._registered}.items():
            out.setdefault(name, target)
        return out

    def is_builtin(self, name: str) -> bool:
        return self.targets().get(name) in self.builtins.values()

    def register(self, name: str, target: str) -> None:
        """Register `name` -> "module:Class" for this process (an installed package uses an entry point)."""
        self._registered[name] = target
        self.on_change()

    def unregister(self, name: str) -> None:
        """Undo `register` (a built-in or an installed entry point stays)."""
        self._registered.pop(name, None)
        self.on_change()

    def load(self, name: str) -> object | None:
        """The object `name`'s target names, imported now; None for a name nobody registered."""
        target = self.targets().get(name)
        if target is None:
            return None
        entry = importlib.metadata.EntryPoint(name=name, value=target, group=self.group)
        try:
            return entry.load()
        except ImportError as exc:  # a missing dependency of the part's module
            raise PluginImportError(f"{entry.module} cannot be imported: {exc}", missing_module=True) from exc
        except AttributeError as exc:
            raise PluginImportError(f"{target} does not exist: {exc}", missing_module=False) from exc


@functools.cache
def _installed(group: str) -> dict[str, str]:
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=group)}
    return dict(sorted(found.items()))
