"""What a fleet target is: a dump path, a glob, a ``NAME:ARGS`` connector spec (``qemu:vm3``,
``remote:host:port``) or a whole chain string (``-c qemu:vm3 -o win32``), turned into the chain
links the CLI opens.

Targets are resolved on the client (globs expanded there), so a cluster's workers must see the same
paths (shared storage) or reach the same VMs/daemons.
"""

from __future__ import annotations

import glob
import shlex
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArgumentError
from ..plugins.api import TARGET_ARG
from ..plugins.args import parse_link
from ..plugins.chain import LinkSpec, parse_chain_args
from ..plugins.registry import Inventory, default_inventory

GLOB_CHARS = frozenset("*?[")


@dataclass
class Target:
    """One target: ``label`` is what the ``target`` column shows (what the user wrote, or the path a
    glob matched); ``links`` the chain opened for it on a worker."""

    label: str
    links: list[LinkSpec] = field(default_factory=list)

    def has_os(self) -> bool:
        return any(lk.kind == "os" for lk in self.links)


def _dump_links(path: str) -> list[LinkSpec]:
    """A file: the ``auto`` connector (format by magic), given the path as its target argument so
    paths holding ``:`` or ``,`` need no quoting."""
    return [LinkSpec("connector", "auto", {TARGET_ARG: path})]


def _plugin_kind(text: str, inventory: Inventory) -> str | None:
    """``"connector"`` or ``"os"`` when ``text`` is ``NAME[:ARGS]`` of an installed plugin (a connector
    first: ``raw:/x.img``, ``remote:host:port``; else an OS layer that needs no connector below it,
    such as ``native``), None for anything else (a path, a glob)."""
    if Path(text).exists():
        return None
    try:
        name = parse_link(text).name
    except ArgumentError:
        return None
    for kind in ("connector", "os"):
        if inventory.has(kind, name):
            return kind
    return None


def parse_target(text: str, os_spec: str | None = None, inventory: Inventory | None = None) -> list[Target]:
    """One target word -> targets (a glob may give many, or none).

    ``-c ... [-o ...]`` is a chain; ``NAME:ARGS`` of an installed connector (or OS layer) is that plugin; a
    glob expands to the files it matches; anything else is a dump path (a missing one fails on the
    worker like any other unopenable target, so it shows up as an error row, not a usage error).
    ``os_spec`` (``-o win32``) is added to targets whose chain has no OS layer.
    """
    text = text.strip()
    if not text:
        raise ArgumentError("empty target")
    inv = inventory or default_inventory()
    found: list[Target]
    if text.startswith("-"):
        found = [Target(text, parse_chain_args(shlex.split(text)))]
        if not any(lk.kind == "connector" for lk in found[0].links) and not found[0].has_os():
            raise ArgumentError(f"target {text!r}: a chain needs -c CONNECTOR and/or -o OS")
    elif (kind := _plugin_kind(text, inv)) is not None:
        found = [Target(text, parse_chain_args(["-c" if kind == "connector" else "-o", text]))]
    elif GLOB_CHARS & set(text) and not Path(text).exists():
        matches = sorted(glob.glob(text, recursive=True))
        files = [m for m in matches if not Path(m).is_dir()]
        if not files:
            raise ArgumentError(f"target pattern {text!r} matches no file")
        found = [Target(m, _dump_links(m)) for m in files]
    else:
        found = [Target(text, _dump_links(text))]
    if os_spec:
        for t in found:
            if not t.has_os():
                t.links += parse_chain_args(["-o", os_spec])
    return found


def read_targets_file(path: str | Path) -> list[str]:
    """One target per line; blank lines and ``#`` comments are skipped. ``-`` is stdin."""
    try:
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text()
    except OSError as e:
        raise ArgumentError(f"--targets-file {path}: {e.strerror or e}") from None
    words = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            words.append(line)
    return words


def resolve_targets(words: Iterable[str], os_spec: str | None = None, targets_file: str | Path | None = None,
                    inventory: Inventory | None = None) -> list[Target]:
    """All targets, in order, duplicates (same label) dropped."""
    all_words: list[str] = list(words)
    if targets_file is not None:
        all_words += read_targets_file(targets_file)
    out: list[Target] = []
    seen: set[str] = set()
    inv = inventory or default_inventory()
    for w in all_words:
        for t in parse_target(w, os_spec, inv):
            if t.label not in seen:
                seen.add(t.label)
                out.append(t)
    return out


def as_targets(targets: str | Target | Sequence[str | Target], os_spec: str | None = None) -> list[Target]:
    """The Python API's ``targets``: one word, a list of words, or ready ``Target`` objects."""
    items: Sequence[str | Target] = [targets] if isinstance(targets, (str, Target)) else targets
    out: list[Target] = []
    for item in items:
        out += [item] if isinstance(item, Target) else resolve_targets([item], os_spec)
    return out
