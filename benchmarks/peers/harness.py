"""What every peer's worker shares: the workloads, the timing loop and the result file.

Standard library only: it runs inside each peer's own virtual environment, next to nothing but that
peer. A peer module (``peer_<name>.py``) defines ``NAME``, ``version()``, ``setup(plan) -> state``,
``workloads(state) -> {workload: Workload}`` and ``close(state)``. Each workload function runs the
whole loop with the peer's own calls bound to locals (no adapter call per read) and returns what it
read; ``digest`` turns that into a checksum outside the timed region (a CRC of 16 MiB costs more
than reading it), and the report compares it with the plan's: a peer that reads other bytes is flagged.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

M64 = (1 << 64) - 1

WORKLOADS: dict[str, tuple[str, str]] = {
    # name: (what it is, unit of the per-op figure in the report)
    "single8": ("single 8-byte virtual read (one call each)", "us"),
    "batch8": ("batched 8-byte virtual reads (one call for the whole list)", "M/s"),
    "read4k": ("4 KiB virtual reads (one call each)", "us"),
    "read4k_batch": ("4 KiB virtual reads (one call for the whole list)", "us"),
    "read16m": ("one 16 MiB virtual read", "GB/s"),
    "translate": ("virtual -> physical translation (one call each)", "us"),
    "translate_batch": ("virtual -> physical translation (one call for the whole list)", "M/s"),
    "open_ps": ("open 1 GiB image -> process list (in process)", "ms"),
    "ps_cli": ("process list from the command line (new interpreter)", "ms"),
}


@dataclass
class Addresses:
    """The plan's virtual addresses, per workload, as plain lists (what a peer's loop iterates)."""

    single: list[int]
    batch: list[int]
    pages: list[int]
    big_va: int
    big_n: int
    translate: list[int]

    @classmethod
    def of(cls, plan: dict[str, Any]) -> Addresses:
        return cls(plan["single8"]["va"], plan["batch8"]["va"], plan["read4k"]["va"], plan["read16m"]["va"],
                   plan["read16m"]["size"], plan["translate"]["va"])


def _identity(result: Any) -> Any:
    return result


@dataclass
class Workload:
    """``run()`` does ``ops`` operations moving ``nbytes`` bytes; ``digest(run())`` is its checksum
    (None: nothing to compare)."""

    run: Callable[[], Any]
    ops: int
    nbytes: int = 0
    note: str = ""
    digest: Callable[[Any], int | None] = _identity


def u64_sum(values: Any) -> int:
    return sum(values) & M64


def bytes_u64_sum(chunks: Any) -> int:
    return sum(int.from_bytes(c, "little") for c in chunks) & M64


def crc_sum(chunks: Any) -> int:
    return sum(zlib.crc32(c) for c in chunks) & M64


def timed_runs(wl: Workload, min_runs: int, max_runs: int, budget_s: float) -> tuple[list[float], Any]:
    """One warm-up call, then at least ``min_runs`` timed calls, more up to ``max_runs`` while within
    ``budget_s``: slow peers get fewer repeats, never fewer than ``min_runs``. The checksums of the
    warm-up and of the last run must agree."""
    check = wl.digest(wl.run())
    times: list[float] = []
    start = time.perf_counter()
    result = None
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < budget_s):
        result = None  # let the previous result go before the next run allocates its own
        t0 = time.perf_counter()
        result = wl.run()
        times.append(time.perf_counter() - t0)
    last = wl.digest(result)
    if last != check:
        raise RuntimeError(f"checksum changed between runs: {check} then {last}")
    return times, check


def run_peer(peer: Any, plan: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"peer": peer.NAME, "version": peer.version(), "python": sys.version.split()[0],
                           "results": {}}
    reps = plan["repeats"]
    state = peer.setup(plan)
    try:
        for name, wl in peer.workloads(state).items():
            if name not in WORKLOADS:
                raise KeyError(f"{peer.NAME}: unknown workload {name!r}")
            entry: dict[str, Any] = {"ops": wl.ops, "bytes": wl.nbytes, "note": wl.note}
            try:
                times, check = timed_runs(wl, reps["min"], reps["max"], reps["budget_s"])
                entry.update(times=times, median_s=statistics.median(times), check=check)
            except Exception as e:  # a peer that cannot do a workload says why, the others go on
                entry["error"] = f"{type(e).__name__}: {e}".strip()
                traceback.print_exc(file=sys.stderr)
            out["results"][name] = entry
            print(f"  {peer.NAME:>12} {name:<16} "
                  + (entry.get("error") or f"median {entry['median_s'] * 1e3:9.3f} ms over {len(entry['times'])} runs"),
                  file=sys.stderr, flush=True)
    finally:
        peer.close(state)
    return out


def main() -> int:
    """``worker: python harness.py PEER PLAN.json OUT.json`` (PEER names ``peer_PEER.py`` beside it)."""
    if len(sys.argv) != 4:
        print("usage: harness.py PEER PLAN.json OUT.json", file=sys.stderr)
        return 2
    name, plan_path, out_path = sys.argv[1:]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    peer = __import__(f"peer_{name}")
    plan = json.loads(Path(plan_path).read_text())
    try:
        result = run_peer(peer, plan)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        result = {"peer": getattr(peer, "NAME", name), "error": f"{type(e).__name__}: {e}", "results": {}}
    Path(out_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
