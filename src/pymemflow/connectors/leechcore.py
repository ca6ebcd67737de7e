"""``leechcore`` connector: any LeechCore device (PCIe FPGA, ``file://`` dumps, remote agents, ...)
through PyPI's ``leechcorepyc`` (optional extra ``pymemflow[leechcore]``).

LeechCore reads whole 4 KiB pages: ``read`` refuses anything under 4096 bytes and
``read_scatter`` takes page addresses and silently leaves out pages it could not read. So a batch
is turned into the set of pages it touches (one ``read_scatter`` per 1024 pages), pieces are cut out
of those pages, and a page missing from the answer becomes a failure of every piece touching it.
Pieces of 64 KiB or more use one contiguous ``read`` (falling back to pages when it fails).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import PluginError, ReadFailure
from ..mem.phys import PhysicalMemory, PhysicalMetadata
from ..mem.view import I64Array, U8Array, U64Array
from ..types import ArgSpec, PluginSpec, parse_bool

PAGE = 4096
SCATTER_CHUNK = 1024
BIG_READ = 64 * 1024



def _import_leechcore() -> Any:
    try:
        import leechcorepyc  # type: ignore[import-not-found]
    except ImportError:
        raise PluginError("leechcore: the 'leechcorepyc' package is not installed "
                          "(pip install 'pymemflow[leechcore]')") from None
    return leechcorepyc


class LeechCoreConnector(PhysicalMemory):
    name = "leechcore"

    def __init__(self, device: str, remote: str = "", writable: bool = False) -> None:
        super().__init__()
        lc_mod = _import_leechcore()
        try:
            self.lc = lc_mod.LeechCore(device, remote or "", 0) if remote else lc_mod.LeechCore(device)
        except Exception as e:  # leechcorepyc raises TypeError/RuntimeError("Unable to initialize.")
            raise PluginError(f"leechcore: cannot open device {device!r}: {e} (LeechCore's file device "
                              "also refuses very small files)") from None
        self.device = device
        if writable and not self.lc.is_writable:
            self.lc.close()
            raise PluginError(f"leechcore: device {device!r} is not writable")
        memmap = list(self.lc.memmap or [])
        real = sum(int(m["size"]) for m in memmap) if memmap else int(self.lc.maxaddr)
        self.metadata = PhysicalMetadata(max_address=int(self.lc.maxaddr), real_size=real, readonly=not writable,
                                         ideal_batch_size=SCATTER_CHUNK)
        self.hints["live"] = bool(self.lc.is_volatile)
        if self.hints["live"]:
            self.hints["cache_time"] = 0.1  # a live device (FPGA, agent): short cache validity
        self._closed = False

    def _pages(self, pages: list[int]) -> dict[int, bytes]:
        got: dict[int, bytes] = {}
        for i in range(0, len(pages), SCATTER_CHUNK):
            for ent in self.lc.read_scatter(pages[i : i + SCATTER_CHUNK]):
                data = ent.get("data")
                if data is not None and len(data) == PAGE:
                    got[int(ent["addr"])] = data
        return got

    def _read_batch(self, addrs: U64Array, lengths: I64Array, out: U8Array) -> list[ReadFailure]:
        offsets = np.zeros(lengths.shape[0], dtype=np.int64)
        if lengths.shape[0] > 1:
            np.cumsum(lengths[:-1], out=offsets[1:])
        maxaddr = self.metadata.max_address
        small: list[int] = []
        fails: list[ReadFailure] = []
        for i in range(addrs.shape[0]):
            a, n, o = int(addrs[i]), int(lengths[i]), int(offsets[i])
            if n >= BIG_READ and a + n <= maxaddr:
                start = a & ~(PAGE - 1)
                end = (a + n + PAGE - 1) & ~(PAGE - 1)
                try:
                    data = self.lc.read(start, end - start)
                except RuntimeError:
                    small.append(i)
                    continue
                out[o : o + n] = np.frombuffer(data, np.uint8, n, a - start)
            elif n:
                small.append(i)
        if not small:
            return fails
        wanted: set[int] = set()
        for i in small:
            a, n = int(addrs[i]), int(lengths[i])
            wanted.update(range(a & ~(PAGE - 1), min(a + n, maxaddr), PAGE))
        pages = self._pages(sorted(p for p in wanted if p < maxaddr))
        for i in small:
            a, n, o = int(addrs[i]), int(lengths[i]), int(offsets[i])
            pos, bad = a, -1
            while pos < a + n:
                page = pos & ~(PAGE - 1)
                step = min(page + PAGE, a + n) - pos
                data = pages.get(page)
                dst = o + pos - a
                if data is None:
                    out[dst : dst + step] = 0
                    if bad < 0:
                        bad = pos
                else:
                    out[dst : dst + step] = np.frombuffer(data, np.uint8, step, pos - page)
                    if bad >= 0:
                        fails.append(ReadFailure(i, bad, pos - bad, "LeechCore could not read the page"))
                        bad = -1
                pos += step
            if bad >= 0:
                fails.append(ReadFailure(i, bad, a + n - bad, "LeechCore could not read the page"))
        return fails

    def _write_batch(self, addrs: U64Array, lengths: I64Array, data: U8Array) -> list[ReadFailure]:
        if self.metadata.readonly:
            return super()._write_batch(addrs, lengths, data)
        fails = []
        o = 0
        for i in range(addrs.shape[0]):
            n = int(lengths[i])
            try:
                self.lc.write(int(addrs[i]), data[o : o + n].tobytes())
            except RuntimeError as e:
                fails.append(ReadFailure(i, int(addrs[i]), n, f"LeechCore write failed: {e}"))
            o += n
        return fails

    def info(self) -> dict[str, Any]:
        d = super().info()
        d.update({"device": self.device, "type": str(self.lc.type), "memmap": list(self.lc.memmap or [])})
        return d

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.lc.close()


def _factory(args: dict[str, Any], input: Any) -> LeechCoreConnector:
    target = args.get("target")
    if not target:
        raise PluginError("leechcore: give a LeechCore device string, e.g. leechcore:fpga or "
                          "leechcore:file:///path/mem.raw")
    return LeechCoreConnector(target, args.get("remote") or "", bool(args.get("writable")))


PLUGIN = PluginSpec(
    kind="connector",
    name="leechcore",
    description="Any LeechCore device (fpga, file://, remote agents) through leechcorepyc (pymemflow[leechcore])",
    factory=_factory,
    args=[
        ArgSpec("target", "LeechCore device string (fpga, file://PATH, ...)", required=True),
        ArgSpec("remote", "LeechCore remote string (rpc://...), empty for local"),
        ArgSpec("writable", "allow writes", default=False, parse=parse_bool),
    ],
)
