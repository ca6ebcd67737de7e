"""A reusable fuzz harness: every case runs in its own forked process with a timeout and a memory
limit, and is classified by how it ended.

Why a subprocess per case: a parser that hangs, or that allocates what a corrupt field asks for,
must fail the suite instead of taking pytest down with it.

Usage (the whole API)::

    from fuzz.harness import Case, run_cases, case_budget, mutate

    def open_blob(seed: int) -> None:          # a module-level function: cases are pickled by reference
        blob = mutate(ORIGINAL, random.Random(seed))
        ...                                     # parse it; raising a PymemflowError is a clean rejection

    report = run_cases([Case(open_blob, (s,), f"blob#{s}") for s in range(case_budget(100))])
    report.assert_clean()                       # fails on internal errors, hangs, blowups and crashes
    print(report.summary())                     # "N cases: a ok, b clean errors, 0 internal, ..."

Each case ends as one of:

- ``ok``        the target returned;
- ``clean``     it raised a :class:`pymemflow.errors.PymemflowError` (a documented error);
- ``internal``  it raised anything else (the traceback is in ``Outcome.detail``);
- ``hang``      it ran past ``timeout`` seconds and was killed;
- ``blowup``    it hit the memory limit (``MemoryError`` under ``RLIMIT_AS``, or its peak RSS
  went past the limit);
- ``crash``     the process died without reporting (a signal, ``os._exit``).

``run_cases(cases, timeout=, memory_limit=, warm=)``: ``memory_limit`` is the number of bytes a case
may allocate on top of the process it was forked from; ``warm`` lists module-level functions the
fork server calls once before any case (build expensive originals there, e.g. into a module-level
cache: every case inherits them). The fork server is a fresh interpreter started once per
``run_cases`` call (single-threaded, so forking it is safe); each case costs a fork, not an
interpreter start.

The size of a run: :func:`case_budget` returns ``PYMEMFLOW_FUZZ_CASES`` (or pytest's
``--fuzz-cases N``, which sets it) when given, else the caller's CI default. A JSON summary of
every ``run_cases`` call is appended to ``PYMEMFLOW_FUZZ_REPORT`` when that names a file.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import random
import resource
import select
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

KINDS = ("ok", "clean", "internal", "hang", "blowup", "crash")
BAD = ("internal", "hang", "blowup", "crash")
ENV_CASES = "PYMEMFLOW_FUZZ_CASES"
ENV_REPORT = "PYMEMFLOW_FUZZ_REPORT"
DEFAULT_TIMEOUT = 30.0
"""Seconds per case. Generous: the CI machine is shared and each case should take milliseconds."""
DEFAULT_MEMORY = 1 << 30
"""Bytes a case may allocate beyond what it inherits."""


def case_budget(default: int) -> int:
    """Cases to run: ``PYMEMFLOW_FUZZ_CASES`` if set (long runs), else ``default`` (CI)."""
    text = os.environ.get(ENV_CASES, "").strip()
    return int(text) if text else default


@dataclass(frozen=True)
class Case:
    """One call ``target(*args)``; ``target`` must be a module-level function (pickled by name)."""

    target: Callable[..., Any]
    args: tuple[Any, ...] = ()
    name: str = ""


@dataclass
class Outcome:
    case: Case
    kind: str
    detail: str = ""
    seconds: float = 0.0
    peak_rss: int = 0
    """Peak resident set of the case's process, bytes."""


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(o.kind for o in self.outcomes)
        return {"cases": len(self.outcomes), **{k: c.get(k, 0) for k in KINDS}}

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind in BAD]

    def summary(self) -> str:
        c = self.counts()
        return (f"{c['cases']} cases: {c['ok']} ok, {c['clean']} clean errors, {c['internal']} internal, "
                f"{c['hang']} hangs, {c['blowup']} blowups, {c['crash']} crashes")

    def assert_clean(self) -> None:
        bad = self.failures()
        if bad:
            shown = "\n\n".join(f"[{o.kind}] {o.case.name or o.case.target.__name__}{o.case.args!r}:\n{o.detail}"
                                for o in bad[:5])
            raise AssertionError(f"{self.summary()}\n\n{shown}")


# ---- mutations ------------------------------------------------------------------------------------

INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x1000, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               1 << 32, 1 << 40, 1 << 46, 1 << 63, (1 << 63) - 1, (1 << 64) - 1, (1 << 64) - 0x1000)
"""Values that break size and offset arithmetic: zero, one, sign boundaries, huge sizes."""


def mutate(blob: bytes, rng: random.Random, *, span: int | None = None, edits: int | None = None) -> bytes:
    """``blob`` with 1-8 random edits in its first ``span`` bytes (all of it by default): a random
    byte, a flipped bit, an :data:`INTERESTING` little-endian integer of 1/2/4/8 bytes at an aligned
    offset, a zeroed run, a run copied from elsewhere in the blob (edits never change the length
    and stay inside the span); then, one time in four, a truncation. Deterministic for a
    given ``rng`` state."""
    b = bytearray(blob)
    if not b:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    limit = max(1, min(span or len(b), len(b)))
    for _ in range(edits if edits is not None else rng.randint(1, 8)):
        pos = rng.randrange(limit)
        kind = rng.randrange(5)
        if kind == 0:
            b[pos] = rng.randrange(256)
        elif kind == 1:
            b[pos] ^= 1 << rng.randrange(8)
        elif kind == 2:
            width = rng.choice((1, 2, 4, 8))
            pos -= pos % width
            width = min(width, limit - pos)
            value = rng.choice(INTERESTING) % (1 << (8 * width))
            b[pos : pos + width] = value.to_bytes(width, "little")
        elif kind == 3:
            n = min(rng.choice((4, 8, 16, 64)), limit - pos)
            b[pos : pos + n] = bytes(n)
        else:
            src = rng.randrange(len(b))
            n = min(rng.randrange(1, 64), limit - pos, len(b) - src)
            b[pos : pos + n] = b[src : src + n]
    if rng.random() < 0.25:
        b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


# ---- running cases ---------------------------------------------------------------------------------

def _vm_size() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _run_in_child(case: Case, memory_limit: int) -> tuple[str, str, float, int]:
    """In the forked process: limit memory, silence output, run, classify."""
    from pymemflow.errors import PymemflowError

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    limit = _vm_size() + memory_limit
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    t = time.monotonic()
    try:
        case.target(*case.args)
        kind, detail = "ok", ""
    except PymemflowError as e:
        kind, detail = "clean", f"{type(e).__name__}: {e}"
    except MemoryError:
        kind, detail = "blowup", traceback.format_exc(limit=-8)
    except BaseException:
        kind, detail = "internal", traceback.format_exc(limit=-8)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if kind != "blowup" and rss - base_rss > memory_limit:
        kind, detail = "blowup", f"peak RSS {rss >> 20} MiB, over the limit; ended as {kind}: {detail}"
    return kind, detail[:4000], time.monotonic() - t, rss


def _fork_one(case: Case, timeout: float, memory_limit: int) -> tuple[str, str, float, int]:
    r, w = os.pipe()
    t = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the case's own process
        os.close(r)
        try:
            with os.fdopen(w, "wb") as f:
                f.write(pickle.dumps(_run_in_child(case, memory_limit)))
        finally:
            os._exit(0)
    os.close(w)
    chunks: list[bytes] = []
    hung = False
    while True:
        left = t + timeout - time.monotonic()
        if left <= 0:
            hung = True
            break
        if select.select([r], [], [], left)[0]:
            b = os.read(r, 1 << 16)
            if not b:
                break
            chunks.append(b)
    os.close(r)
    if hung:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    secs = time.monotonic() - t
    if hung:
        return "hang", f"no result after {timeout:.0f} s (killed)", secs, 0
    try:
        result: tuple[str, str, float, int] = pickle.loads(b"".join(chunks))
        return result
    except Exception:
        how = (f"signal {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status)
               else f"exit code {os.waitstatus_to_exitcode(status)}")
        return "crash", f"process ended without a result ({how})", secs, 0


def _serve(cases: list[Case], timeout: float, memory_limit: int, warm: Sequence[Callable[[], Any]],
           conn: Any) -> None:
    """The fork server: a fresh single-threaded interpreter (fork is safe), warmed once."""
    for fn in warm:
        fn()
    for i, case in enumerate(cases):
        conn.send((i, *_fork_one(case, timeout, memory_limit)))
    conn.close()


def run_cases(cases: Iterable[Case], *, timeout: float = DEFAULT_TIMEOUT, memory_limit: int = DEFAULT_MEMORY,
              warm: Sequence[Callable[[], Any]] = ()) -> Report:
    """Run every case in its own forked process; returns the :class:`Report` (never raises for a
    bad case). ``warm``: module-level functions the fork server calls once before the first case."""
    todo = list(cases)
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    server = ctx.Process(target=_serve, args=(todo, timeout, memory_limit, list(warm), send), daemon=True)
    server.start()
    send.close()
    outcomes: dict[int, Outcome] = {}
    try:
        while len(outcomes) < len(todo):
            if not recv.poll(timeout + 120):
                break
            try:
                i, kind, detail, secs, rss = recv.recv()
            except EOFError:
                break
            outcomes[i] = Outcome(todo[i], kind, detail, secs, rss)
    finally:
        if server.is_alive():
            server.kill()
        server.join(10)
        recv.close()
    for i, case in enumerate(todo):  # the server itself died or stalled
        outcomes.setdefault(i, Outcome(case, "crash", f"fork server ended (exit code {server.exitcode})"))
    report = Report([outcomes[i] for i in range(len(todo))])
    path = os.environ.get(ENV_REPORT)
    if path:
        names = sorted({c.target.__module__ + ":" + c.target.__name__ for c in todo})
        with open(path, "a") as f:
            f.write(json.dumps({"targets": names, **report.counts()}) + "\n")
    return report
