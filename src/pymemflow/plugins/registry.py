"""The plugin inventory: built-in plugins, entry points, plugin folders.

Sources, in order of precedence (the first plugin of a kind and name wins; later ones with the same
name are recorded in :attr:`Inventory.shadowed` and logged as a warning):

1. built-in modules listed in :data:`pymemflow.plugins.builtin.BUILTIN_MODULES` -- a third-party
   package can never silently replace ``raw`` or ``win32``;
2. entry points in the groups ``pymemflow.connectors`` and ``pymemflow.os`` (installed packages),
   in the order ``importlib.metadata`` lists them;
3. plugin folders: every folder of ``PYMEMFLOW_PLUGIN_PATH`` (``os.pathsep``-separated, in order),
   then ``~/.local/lib/pymemflow``; each ``.py`` file in them (sorted by name) that defines
   ``PLUGIN`` or ``PLUGINS``.

A source that fails to import is skipped with a warning (``-v`` shows it) and listed in
:attr:`Inventory.problems`, so one broken plugin never takes the others down.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import ArgumentError
from ..records import PlainRecord, replace_fields
from ..types import did_you_mean
from .api import PluginKind, PluginSpec
from .builtin import ALONE, BUILTIN_MODULES

if TYPE_CHECKING:  # pathlib only for the full scan: a chain of built-ins (a daemon's thin client) skips it
    from pathlib import Path

log = logging.getLogger(__name__)

ENTRY_POINT_GROUPS: dict[PluginKind, str] = {"connector": "pymemflow.connectors", "os": "pymemflow.os"}
PLUGIN_PATH_ENV = "PYMEMFLOW_PLUGIN_PATH"
USER_PLUGIN_DIR = "~/.local/lib/pymemflow"


def plugin_folders(env: dict[str, str] | None = None) -> list[Path]:
    """The plugin folders searched, in precedence order: ``PYMEMFLOW_PLUGIN_PATH``, then the user's."""
    from pathlib import Path

    e = os.environ if env is None else env
    folders = [Path(p).expanduser() for p in e.get(PLUGIN_PATH_ENV, "").split(os.pathsep) if p.strip()]
    folders.append(Path(USER_PLUGIN_DIR).expanduser())
    return folders


def specs_of(obj: Any, where: str) -> list[PluginSpec]:
    """The PluginSpecs an imported object offers: a PluginSpec, a list of them, or a module with
    ``PLUGIN`` / ``PLUGINS``."""
    if isinstance(obj, PluginSpec):
        return [obj]
    if isinstance(obj, (list, tuple)):
        out = [s for s in obj if isinstance(s, PluginSpec)]
        if len(out) != len(obj):
            raise TypeError(f"{where}: PLUGINS holds something that is not a PluginSpec")
        return out
    if isinstance(obj, ModuleType):
        found: list[PluginSpec] = []
        if hasattr(obj, "PLUGIN"):
            found += specs_of(obj.PLUGIN, where)
        if hasattr(obj, "PLUGINS"):
            found += specs_of(obj.PLUGINS, where)
        if not found:
            raise TypeError(f"{where}: module defines neither PLUGIN nor PLUGINS")
        return found
    raise TypeError(f"{where}: {type(obj).__name__} is not a PluginSpec or a plugin module")


def _load_file(path: Path) -> ModuleType:
    """Import a plugin-folder ``.py`` file under a private, path-unique module name."""
    import hashlib  # only for plugin-folder files (start-up of the CLI's thin clients)
    import importlib.util

    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    modname = f"_pymemflow_plugin_{path.stem}_{digest}"
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[modname]
        raise
    return module


class Inventory(PlainRecord):
    """Every plugin found, by kind and name. Build one with :meth:`load` (or :func:`default_inventory`).
    ``shadowed``: (loser, winner) pairs of name clashes; ``problems``: sources that could not be
    loaded, one message each."""

    __slots__ = ("plugins", "shadowed", "problems")

    def __init__(self, plugins: dict[tuple[str, str], PluginSpec] | None = None,
                 shadowed: list[tuple[PluginSpec, PluginSpec]] | None = None, problems: list[str] | None = None) -> None:
        self.plugins: dict[tuple[str, str], PluginSpec] = {} if plugins is None else plugins
        self.shadowed: list[tuple[PluginSpec, PluginSpec]] = [] if shadowed is None else shadowed
        self.problems: list[str] = [] if problems is None else problems

    @classmethod
    def load(cls, *, builtin: bool = True, entry_points: bool = True,
             folders: Iterable[str | Path] | None = None) -> Inventory:
        """Scan the sources; ``folders=None`` means :func:`plugin_folders`."""
        inv = cls()
        if builtin:
            for modname in BUILTIN_MODULES:
                inv._add_from(lambda m=modname: importlib.import_module(m), modname, "builtin")
        if entry_points:
            from importlib import metadata  # ~20 ms: only when scanning

            for kind, group in ENTRY_POINT_GROUPS.items():
                for ep in metadata.entry_points(group=group):
                    dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
                    inv._add_from(ep.load, f"entry point {ep.name} = {ep.value} ({dist})",
                                  f"entry point {dist}", kind=kind)
        from pathlib import Path

        for folder in plugin_folders() if folders is None else [Path(f) for f in folders]:
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.py")):
                inv._add_from(lambda p=path: _load_file(p), str(path), str(path))
        return inv

    def _add_from(self, loader: Any, where: str, origin: str, kind: PluginKind | None = None) -> None:
        try:
            specs = specs_of(loader(), where)
        except Exception as e:  # a broken plugin must not take the others down
            msg = f"plugin {where} skipped: {type(e).__name__}: {e}"
            self.problems.append(msg)
            log.warning(msg)
            return
        for spec in specs:
            if kind is not None and spec.kind != kind:
                msg = (f"plugin {where} skipped: {spec.name!r} is a {spec.kind} plugin in the "
                       f"{ENTRY_POINT_GROUPS[kind]!r} entry-point group")
                self.problems.append(msg)
                log.warning(msg)
                continue
            if origin != "builtin":  # a copy: the same spec object may come from two sources
                spec = replace_fields(spec, origin=origin)
            self.add(spec)

    def add(self, spec: PluginSpec) -> bool:
        """Add ``spec`` unless a plugin of that kind and name exists (then the clash is recorded)."""
        key = (spec.kind, spec.name)
        winner = self.plugins.get(key)
        if winner is not None:
            if winner is not spec:
                self.shadowed.append((spec, winner))
                log.warning("%s plugin %r from %s is shadowed by the one from %s",
                            spec.kind, spec.name, spec.origin, winner.origin)
            return False
        self.plugins[key] = spec
        return True

    def specs(self, kind: str | None = None) -> list[PluginSpec]:
        """Plugins of ``kind`` (all when None), sorted by kind and name."""
        return sorted((s for s in self.plugins.values() if kind is None or s.kind == kind),
                      key=lambda s: (s.kind, s.name))

    def connectors(self) -> list[PluginSpec]:
        return self.specs("connector")

    def oses(self) -> list[PluginSpec]:
        return self.specs("os")

    def names(self, kind: str) -> list[str]:
        return [s.name for s in self.specs(kind)]

    def has(self, kind: str, name: str) -> bool:
        return (kind, name) in self.plugins

    def get(self, kind: str, name: str) -> PluginSpec:
        """The plugin, or :class:`ArgumentError` listing the ones there are (a wrong name is the
        user's input, hence a usage error)."""
        spec = self.plugins.get((kind, name))
        if spec is None:
            other = "os" if kind == "connector" else "connector"
            hint = ""
            if (other, name) in self.plugins:
                hint = (f" ({name!r} is {'an OS layer' if other == 'os' else 'a connector'}: "
                        f"use {'-o' if other == 'os' else '-c'} {name})")
            noun = "OS layer" if kind == "os" else "connector"
            hint = hint or did_you_mean(name, self.names(kind))
            raise ArgumentError(f"unknown {noun} {name!r}{hint}; available: "
                                f"{', '.join(self.names(kind)) or '(none)'}")
        return spec


_default: Inventory | None = None


def inventory_for(wanted: Iterable[tuple[str, str]]) -> Inventory:
    """The inventory a chain of ``(kind, name)`` links needs: only their modules when every one is in
    :data:`~pymemflow.plugins.builtin.ALONE` (same result as the full scan: built-ins win), else
    :func:`default_inventory`."""
    keys = set(wanted)
    if _default is None and keys and keys <= ALONE.keys():
        inv = Inventory()
        for key in sorted(keys):
            inv._add_from(lambda m=ALONE[key]: importlib.import_module(m), ALONE[key], "builtin")
        if all(inv.has(*k) for k in keys):
            return inv
    return default_inventory()


def default_inventory(refresh: bool = False) -> Inventory:
    """The process-wide inventory, scanned on first use (``refresh=True`` rescans, e.g. after
    changing ``PYMEMFLOW_PLUGIN_PATH`` or installing a package)."""
    global _default
    if _default is None or refresh:
        importlib.invalidate_caches()
        _default = Inventory.load()
    return _default
