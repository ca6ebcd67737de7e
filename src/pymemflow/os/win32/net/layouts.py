"""Which tcpip.sys endpoint layout a Windows build uses, from the generated table in ``data/``.

Layout records (``layout["tcp_endpoint"]`` ...) hold byte offsets (``owner``, ``create_time``, ``state``,
``port`` ...) and *pointer paths* for addresses: read a pointer at object+path[0], then at that+path[1] ...;
the last pointer read is the address of the 4- or 16-byte IP address (``_IN_ADDR``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class LayoutChoice:
    name: str | None
    """Layout name (``win10-19041-x64``), None when no layout fits."""
    layout: dict[str, Any] | None
    exact: bool
    """False when the build is not in the table and a neighbour was taken (or none)."""
    note: str
    """How the choice was made, for info() and warnings."""


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("data/tcpip_layouts.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


def choose(arch: str, major: int, minor: int, build: int, revision: int = 0, *, source: str = "") -> LayoutChoice:
    """The layout for a tcpip.sys of this Windows version. An unknown build takes the nearest lower build
    of the same arch and NT version (and says so); nothing below it: no layout."""
    arch = "x64" if arch == "x64" else "x86"
    doc = table()
    rows = [r for r in doc["builds"] if r["arch"] == arch and (r["major"], r["minor"]) == (major, minor)]
    what = f"{major}.{minor}.{build}.{revision} {arch}" + (f" ({source})" if source else "")
    exact = [r for r in rows if r["build"] == build and r["revision"] <= revision]
    if exact:
        r = max(exact, key=lambda r: r["revision"])
        return LayoutChoice(r["layout"], doc["layouts"][r["layout"]], True, f"tcpip layout {r['layout']} for {what}")
    lower = [r for r in rows if r["build"] < build]
    if lower:
        r = max(lower, key=lambda r: (r["build"], r["revision"]))
        return LayoutChoice(r["layout"], doc["layouts"][r["layout"]], False,
                            f"no tcpip layout known for build {what}; using the nearest older one, "
                            f"{r['layout']} (build {r['build']}): results may be wrong")
    return LayoutChoice(None, None, False, f"no tcpip layout known for build {what}")
