"""Chains of connectors and OS layers, opened in command-line order.

``-c raw:/x.img -o win32``: win32 reads the raw connector. ``-o native -c qemu:vm -o win32``: the
qemu connector runs on top of the native OS layer (it finds the VM process there), win32 reads the
qemu connector. Each OS layer gets the most recent connector before it as input; each connector
gets the most recent OS layer before it -- when the plugin says it accepts input
(``PluginSpec.accepts_input``); a plugin that ``requires_input`` and has none is a usage error.
A connector's ``:``-section stacks middleware (:func:`pymemflow.mem.middleware.wrap`).

The same chains from Python::

    with pymemflow.chain(["-c", "raw:/x.img", "-o", "win32"]) as ch: ...
    with pymemflow.Chain().connector("raw", "/x.img", cache=True).os("win32") as ch: ...
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from os import PathLike, fspath
from os.path import exists
from typing import TYPE_CHECKING, Any, cast

from ..errors import ArgumentError
from ..records import PlainRecord
from ..types import PROGRESS_ARG, TARGET_ARG, PluginSpec, ProgressReporter
from .args import format_link, middleware_keys, parse_link, validate, validate_middleware
from .registry import Inventory, default_inventory, inventory_for

if TYPE_CHECKING:  # annotations only: opening a remote-only chain must not load NumPy (nor pathlib)
    from pathlib import Path

    from ..mem.phys import Connector
    from ..os.base import OsLayer

log = logging.getLogger(__name__)

FLAGS = {"-c": "connector", "--connector": "connector", "-o": "os", "--os": "os"}


class LinkSpec(PlainRecord):
    """One link before opening: plugin kind and name, its arguments, its middleware options. ``text``:
    the command-line text it was parsed from ("" when built from Python; not compared, not shown)."""

    __slots__ = ("kind", "name", "args", "middleware", "text")
    _hidden = frozenset({"text"})

    def __init__(self, kind: str, name: str, args: dict[str, Any] | None = None,
                 middleware: dict[str, Any] | None = None, text: str = "") -> None:
        self.kind, self.name, self.text = kind, name, text
        self.args: dict[str, Any] = {} if args is None else args
        self.middleware: dict[str, Any] = {} if middleware is None else middleware

    def __str__(self) -> str:
        flag = "-c" if self.kind == "connector" else "-o"
        return f"{flag} {format_link(self.name, self.args, self.middleware)}"


class Link(PlainRecord):
    """One opened link. ``obj``: the connector (with its middleware) or the OS layer; ``input``: what
    the plugin was opened on: the connector an OS layer reads, the OS layer a connector runs on
    (``-o native -c qemu:vm``), or None."""

    __slots__ = ("spec", "plugin", "obj", "input")

    def __init__(self, spec: LinkSpec, plugin: PluginSpec, obj: Connector | OsLayer,
                 input: Connector | OsLayer | None = None) -> None:
        self.spec, self.plugin, self.obj, self.input = spec, plugin, obj, input


def parse_chain_args(argv: Sequence[str]) -> list[LinkSpec]:
    """``["-c", "raw:/x.img", "-o", "win32"]`` (also ``-craw:..``/``--connector=..``) -> link specs."""
    links: list[LinkSpec] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        kind = FLAGS.get(arg)
        if kind is not None:
            if i + 1 >= len(argv):
                raise ArgumentError(f"{arg} needs a value ({'CONNECTOR[:ARGS]' if kind == 'connector' else 'OS[:ARGS]'})")
            value = argv[i + 1]
            i += 2
        elif arg.startswith(("--connector=", "--os=")):
            flag, value = arg.split("=", 1)
            kind = FLAGS[flag]
            i += 1
        elif arg[:2] in ("-c", "-o") and len(arg) > 2:
            kind, value = FLAGS[arg[:2]], arg[2:]
            i += 1
        else:
            raise ArgumentError(f"unexpected {arg!r} in a chain (expected -c CONNECTOR[:ARGS] or -o OS[:ARGS])")
        la = parse_link(value, kind=kind)
        links.append(LinkSpec(kind, la.name, dict(la.args), dict(la.middleware), text=value))
    return links


def _looks_like_path(name: str) -> bool:
    """Plugin names are identifiers: a name with a path separator or a dot (``mem.lime``) is a file."""
    return "/" in name or "\\" in name or "." in name or name.startswith("~") or exists(name or ".")


def bare_path(ls: LinkSpec, inv: Inventory) -> LinkSpec | None:
    """``-c /x.img`` (no plugin name) is ``-c auto:/x.img``, as ``pymemflow.open("/x.img")``: a connector
    link whose name is no connector but a path (or whose whole text is an existing file) opens ``auto``
    (``raw`` when ``auto`` is not installed). None when the link is not such a path."""
    if ls.kind != "connector" or inv.has("connector", ls.name):
        return None
    conn = "auto" if inv.has("connector", "auto") else "raw"
    if ls.text and exists(ls.text):
        return LinkSpec("connector", conn, {TARGET_ARG: ls.text}, text=f"{conn}:{ls.text}")
    if not _looks_like_path(ls.name):
        return None
    if ls.text:
        la = parse_link(f"{conn}:{ls.text}")
        return LinkSpec("connector", conn, dict(la.args), dict(la.middleware), text=f"{conn}:{ls.text}")
    return LinkSpec("connector", conn, {TARGET_ARG: ls.name, **ls.args}, dict(ls.middleware))


class OpenedChain:
    """An opened chain: ``connector`` and ``os`` are its last connector and OS layer (None when it has
    none); ``links`` all of them in order. ``close()`` closes every link, last first."""

    def __init__(self, links: list[Link]) -> None:
        self.links = links
        self._closed = False

    @property
    def connectors(self) -> list[Connector]:
        return [cast("Connector", lk.obj) for lk in self.links if lk.spec.kind == "connector"]

    @property
    def oses(self) -> list[OsLayer]:
        return [cast("OsLayer", lk.obj) for lk in self.links if lk.spec.kind == "os"]

    @property
    def connector(self) -> Connector | None:
        c = self.connectors
        return c[-1] if c else None

    @property
    def os(self) -> OsLayer | None:
        o = self.oses
        return o[-1] if o else None

    @property
    def top(self) -> Connector | OsLayer | None:
        """The last link opened (what ``pymemflow.open`` returns)."""
        return self.links[-1].obj if self.links else None

    def describe(self) -> str:
        return " ".join(str(lk.spec) for lk in self.links)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for lk in reversed(self.links):
            try:
                lk.obj.close()
            except Exception as e:  # closing must reach every link
                log.warning("closing %s failed: %s", lk.spec, e)

    def __enter__(self) -> OpenedChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<OpenedChain {self.describe() or '(empty)'}>"


def open_links(specs: Sequence[LinkSpec], inventory: Inventory | None = None, *,
               progress: ProgressReporter | None = None) -> OpenedChain:
    """Validate every link first (so a typo in the last one opens nothing), then open in order.

    ``progress`` (a front end's renderer) goes to each plugin that declares a ``progress``
    argument, unless its argument string turned it off (``-o win32:progress=false``)."""
    inv = inventory or inventory_for((ls.kind, ls.name) for ls in specs)
    planned: list[tuple[LinkSpec, PluginSpec, dict[str, Any], dict[str, Any]]] = []
    for ls in specs:
        ls = bare_path(ls, inv) or ls
        plugin = inv.get(ls.kind, ls.name)
        if ls.kind == "os" and ls.middleware:
            raise ArgumentError(f"{ls.name}: OS layers take no middleware ({', '.join(ls.middleware)})")
        args = validate(plugin, ls.args)
        if progress is not None and plugin.arg(PROGRESS_ARG) is not None and args.get(PROGRESS_ARG) is not False:
            args[PROGRESS_ARG] = progress
        planned.append((ls, plugin, args, validate_middleware(ls.name, ls.middleware)))
    links: list[Link] = []
    last: dict[str, Any] = {"connector": None, "os": None}
    try:
        for ls, plugin, args, mw in planned:
            other = "os" if ls.kind == "connector" else "connector"
            inp = last[other] if plugin.accepts_input or plugin.requires_input else None
            if plugin.requires_input and inp is None:
                flag = "-c CONNECTOR" if other == "connector" else "-o OS"
                raise ArgumentError(f"{ls.name}: needs {'a connector' if other == 'connector' else 'an OS layer'}"
                                    f" as input: put {flag} before {'-o' if ls.kind == 'os' else '-c'} {ls.name}")
            log.debug("opening %s (input %s)", ls, type(inp).__name__ if inp is not None else None)
            obj = plugin.factory(args, inp)
            if obj is None:
                raise ArgumentError(f"{ls.name}: the plugin's factory returned nothing")
            if mw:
                try:
                    from ..mem.middleware import wrap  # lazy: NumPy only when a chain has middleware

                    obj = wrap(obj, mw)
                except BaseException:
                    obj.close()
                    raise
            links.append(Link(ls, plugin, obj, inp))
            last[ls.kind] = obj
    except BaseException:
        OpenedChain(links).close()
        raise
    return OpenedChain(links)


def chain(argv: Sequence[str] | str, inventory: Inventory | None = None) -> OpenedChain:
    """Open a chain given as command-line words (``["-c", "raw:/x.img", "-o", "win32"]``) or one
    string (``"-c raw:/x.img -o win32"``, split with shell rules)."""
    if isinstance(argv, str):
        import shlex  # lazy: only chains given as one string

        try:
            argv = shlex.split(argv)
        except ValueError as e:  # shlex: "No closing quotation" / "No escaped character"
            raise ArgumentError(f"cannot split the chain {argv!r} into words: {str(e).lower()} "
                                "(close the quote, or pass a list of words)") from None
    return open_links(parse_chain_args(argv), inventory)


class Chain:
    """Builder for the same chains from Python; ``open()`` (or ``with``) opens it.

    ``Chain().connector("raw", "/x.img", memmap="m.toml", cache=True).os("win32")``: keyword
    arguments that are middleware keys (``cache``, ``cache_size`` ...) go to the middleware, the
    rest to the plugin; values may be text (parsed like the command line) or already typed.
    """

    def __init__(self, inventory: Inventory | None = None) -> None:
        self.links: list[LinkSpec] = []
        self.inventory = inventory
        self._opened: OpenedChain | None = None

    def connector(self, name: str, target: str | Path | None = None, /, **args: Any) -> Chain:
        mw_keys = middleware_keys()
        mw = {k: v for k, v in args.items() if k in mw_keys and v is not None}
        plain = {k: v for k, v in args.items() if k not in mw_keys}
        return self._add("connector", name, target, plain, mw)

    def os(self, name: str, target: str | Path | None = None, /, **args: Any) -> Chain:
        return self._add("os", name, target, args, {})

    def spec(self, flag: str, text: str) -> Chain:
        """Add a link from its command-line text: ``spec("-c", "raw:/x.img:cache=true")``."""
        self.links += parse_chain_args([flag, text])
        return self

    def _add(self, kind: str, name: str, target: Any, args: dict[str, Any], mw: dict[str, Any]) -> Chain:
        a = {TARGET_ARG: fspath(target) if isinstance(target, PathLike) else target} if target is not None else {}
        a.update({k: v for k, v in args.items() if v is not None})
        self.links.append(LinkSpec(kind, name, a, mw))
        return self

    def open(self) -> OpenedChain:
        return open_links(self.links, self.inventory)

    def __enter__(self) -> OpenedChain:
        self._opened = self.open()
        return self._opened

    def __exit__(self, *exc: object) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def __str__(self) -> str:
        return " ".join(str(lk) for lk in self.links)


def open_target(path_or_spec: str | Path, os: str | None = None, *, inventory: Inventory | None = None,
                **args: Any) -> Any:
    """``pymemflow.open``: a path opens the ``auto`` connector (format by magic; ``raw``
    when ``auto`` is not installed), ``"NAME:ARGS"`` (or a bare connector name) opens that plugin.
    ``os`` adds an OS layer (``"win32"`` or ``"win32:ARGS"``). Extra keyword arguments go to the
    connector (``raw=True`` lets ``auto`` map a file with no known magic). Returns the top of the
    chain -- the OS layer if ``os`` is given, else the connector; closing it closes the chain."""
    inv = inventory or default_inventory()
    b = Chain(inv)
    text = str(path_or_spec)
    if not text.strip():
        raise ArgumentError("pymemflow.open: empty path (give a dump file, a raw image, or a connector "
                            "spec such as 'qemu:myvm' or 'demo:win10')")
    name = ""
    if isinstance(path_or_spec, str) and not exists(text):
        try:
            name = parse_link(text).name
        except ArgumentError:  # not a spec (a path with a quote, say): leave it to the connector
            name = ""
    if name and inv.has("connector", name):
        b.spec("-c", text)
        for k, v in args.items():
            (b.links[-1].middleware if k in middleware_keys() else b.links[-1].args)[k] = v
    else:
        conn = "auto" if inv.has("connector", "auto") else "raw"
        b.connector(conn, text, **args)
    if os:
        b.spec("-o", os)
    opened = b.open()
    top = opened.top
    _attach_closer(top, opened)
    return top


def _attach_closer(top: Any, opened: OpenedChain) -> None:
    """Make ``top.close()`` close the whole chain (links below it too) exactly once."""
    if len(opened.links) < 2:
        return
    own_close = top.close

    def close() -> None:
        own_close()
        opened.close()

    try:
        top.close = close
    except AttributeError:  # objects with __slots__: the chain's links stay open until collected
        log.debug("cannot attach the chain's close() to %r", top)
