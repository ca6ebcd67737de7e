"""The daemon's named connections: each one a chain opened once (discovery done, caches warm).

A connection is used by one worker thread at a time (its lock): connectors, TLBs and page caches are
not promised to be thread-safe, and the HTTP side never waits on the lock in the event loop. A chain
call that finds the target gone (the VM exited: ``ProcessGoneError``, or an ``OSError`` from the
connector) marks the connection *failed*; it stays listed with the error until deleted, and every
later request on it gets that error (HTTP 503), while the daemon and the other connections go on.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..arch import VirtualMemory, get_arch
from ..errors import ArgumentError, NotFoundError, PymemflowError
from ..live.procmem import ProcessGoneError
from ..os.base import Process
from ..plugins.chain import OpenedChain, chain
from ..remote.protocol import check_name

log = logging.getLogger("pymemflow.serve")

T = TypeVar("T")


class ConnectionFailed(PymemflowError):
    """The connection's target went away; the message says when and why."""


class NoRoom(ArgumentError):
    """The name is taken, or the connection limit is reached (HTTP 409)."""


def chain_words(spec: str | Sequence[str]) -> list[str]:
    words = shlex.split(spec) if isinstance(spec, str) else [str(w) for w in spec]
    if not words:
        raise ArgumentError("empty chain: give -c CONNECTOR[:ARGS] and/or -o OS[:ARGS]")
    for w in words[::2]:
        if w not in ("-c", "-o", "--connector", "--os"):
            raise ArgumentError(f"chain {' '.join(words)!r}: expected -c or -o, found {w!r}")
    if len(words) % 2:
        raise ArgumentError(f"chain {' '.join(words)!r}: {words[-1]} needs a value")
    return words


@dataclass
class Connection:
    name: str
    words: list[str]
    writable: bool
    opened_by: str
    chain: OpenedChain | None = None
    state: str = "opening"
    error: str = ""
    opened_at: float = field(default_factory=time.time)
    process_ttl: float = 1.0
    lock: threading.RLock = field(default_factory=threading.RLock)
    _procs: dict[int, tuple[Process, float]] = field(default_factory=dict)
    _kernel: Any = None
    _spaces: dict[tuple[str, int], VirtualMemory] = field(default_factory=dict)

    def describe(self, detail: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "chain": " ".join(shlex.quote(w) for w in self.words),
                             "writable": self.writable, "state": self.state, "error": self.error or None,
                             "opened_by": self.opened_by, "opened_at": self.opened_at}
        if detail and self.chain is not None and self.state == "open":
            with self.lock:
                d["connector"] = self.chain.connector.info() if self.chain.connector is not None else None
                d["os"] = self.chain.os.info() if self.chain.os is not None else None
        return d

    # ---- running chain calls -----------------------------------------------------------------------
    def run(self, fn: Callable[[OpenedChain], T]) -> T:
        """``fn(chain)`` under the connection's lock; a vanished target fails the connection."""
        with self.lock:
            if self.state != "open" or self.chain is None:
                raise ConnectionFailed(f"connection {self.name!r} is {self.state}"
                                       + (f": {self.error}" if self.error else ""))
            try:
                return fn(self.chain)
            except (ProcessGoneError, ConnectionError, BrokenPipeError) as e:
                self._fail(e)
                raise ConnectionFailed(f"connection {self.name!r} failed: {self.error}") from e
            except OSError as e:
                if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
                    raise
                self._fail(e)
                raise ConnectionFailed(f"connection {self.name!r} failed: {self.error}") from e

    def _fail(self, e: BaseException) -> None:
        self.state = "failed"
        self.error = f"target went away at {time.strftime('%Y-%m-%d %H:%M:%S')}: {type(e).__name__}: {e}"
        self._procs.clear()
        self._kernel = None
        self._spaces.clear()
        log.error("connection %s failed: %s", self.name, self.error)

    def os(self) -> Any:
        assert self.chain is not None
        if self.chain.os is None:
            raise ArgumentError(f"connection {self.name!r} has no OS layer (its chain: {' '.join(self.words)})")
        return self.chain.os

    def connector(self) -> Any:
        assert self.chain is not None
        if self.chain.connector is None:
            raise ArgumentError(f"connection {self.name!r} has no connector (its chain: {' '.join(self.words)})")
        return self.chain.connector

    def process(self, ref: str) -> Process:
        """A process by pid (digits; cached ``process_ttl`` seconds so batched reads skip the list
        walk, re-looked-up after that so a live target's exited process is noticed) or by name."""
        os_layer = self.os()
        if not ref.isdigit():
            proc: Process = os_layer.process_by_name(ref)
            self._procs[proc.info.pid] = (proc, time.monotonic())
            return proc
        pid = int(ref)
        hit = self._procs.get(pid)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self.process_ttl:
            return hit[0]
        proc = os_layer.process_by_pid(pid)
        if len(self._procs) > 4096:
            self._procs.clear()
        self._procs[pid] = (proc, now)
        return proc

    def kernel_memory(self) -> Any:
        if self._kernel is None:
            self._kernel = self.os().kernel_memory()
        return self._kernel

    def address_space(self, arch: str, dtb: int) -> VirtualMemory:
        """A page-table root walked on the connector (as ``pymemflow translate --dtb``): for targets
        without an OS layer, or address spaces the OS layer does not list."""
        a = get_arch(arch)  # ArgumentError naming the known ones
        key = (a.name, dtb)
        vm = self._spaces.get(key)
        if vm is None:
            if len(self._spaces) >= 64:
                self._spaces.clear()
            vm = self._spaces[key] = VirtualMemory(self.connector(), a, dtb)
        return vm

    def close(self) -> None:
        with self.lock:
            if self.chain is not None:
                self.chain.close()
                self.chain = None
            self.state = "closed"


class Connections:
    """Name -> :class:`Connection`; adding opens the chain, removing closes it."""

    def __init__(self, max_connections: int = 64, process_ttl: float = 1.0) -> None:
        self._items: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self.max_connections = max_connections
        self.process_ttl = process_ttl

    def open(self, name: str, spec: str | Sequence[str], *, writable: bool = False,
             opened_by: str = "config") -> Connection:
        """Open a chain under ``name`` (blocking: discovery runs here)."""
        check_name(name)
        words = chain_words(spec)
        conn = Connection(name, words, writable, opened_by, process_ttl=self.process_ttl)
        with self._lock:
            if name in self._items:
                raise NoRoom(f"a connection named {name!r} exists already (delete it first)")
            if len(self._items) >= self.max_connections:
                raise NoRoom(f"too many connections (limit {self.max_connections})")
            self._items[name] = conn  # reserved while opening, so a second open of the name fails
        t0 = time.monotonic()
        try:
            conn.chain = chain(words)
        except BaseException:
            with self._lock:
                self._items.pop(name, None)
            raise
        conn.state = "open"
        log.warning("connection %s opened by %s: %s%s (%.0f ms)", name, opened_by, " ".join(words),
                    " [writable]" if writable else "", (time.monotonic() - t0) * 1000)
        return conn

    def get(self, name: str) -> Connection:
        with self._lock:
            conn = self._items.get(name)
        if conn is None or conn.state == "opening":
            known = ", ".join(sorted(self._items)) or "none"
            raise NotFoundError(f"no connection named {name!r} (open connections: {known})")
        return conn

    def list(self) -> list[Connection]:
        with self._lock:
            return [c for c in self._items.values() if c.state != "opening"]

    def remove(self, name: str, by: str = "") -> None:
        conn = self.get(name)
        with self._lock:
            self._items.pop(name, None)
        conn.close()
        log.warning("connection %s closed by %s", name, by or "?")

    def add_failed(self, name: str, spec: str | Sequence[str], writable: bool, opened_by: str, error: str) -> None:
        """List a connection that could not be opened (with why), so clients see the reason."""
        words = spec.split() if isinstance(spec, str) else [str(w) for w in spec]
        with self._lock:
            if name not in self._items:
                self._items[name] = Connection(name, words, writable, opened_by, state="failed", error=error)

    def close_all(self) -> None:
        with self._lock:
            items = list(self._items.values())
            self._items.clear()
        for c in items:
            try:
                c.close()
            except Exception as e:  # closing must reach every connection
                log.warning("closing connection %s failed: %s", c.name, e)
