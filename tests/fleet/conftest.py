"""Fleet fixtures: small dumps of the synthetic Windows machine written with the project's dump
writers, Linux dumps of a testbed guest, and a real Dask cluster (a ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1) started here and stopped at the end."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("distributed")

import pymemflow  # noqa: E402
from pymemflow.cli.main import main as cli_main  # noqa: E402
from pymemflow.writers import dump_physical  # noqa: E402
from pymemflow.writers.crashdump import write_crashdump  # noqa: E402
from pymemflow.writers.kdump import write_kdump  # noqa: E402
from pymemflow.writers.vmware import write_vmware  # noqa: E402

DASK = Path(sys.executable).with_name("dask")


@dataclass
class Dumps:
    """Target words (as a user writes them) -> the chain to run each one alone with the CLI."""

    folder: Path
    alone: dict[str, list[str]] = field(default_factory=dict)
    windows: list[str] = field(default_factory=list)
    corrupt: str = ""
    missing: str = ""

    @property
    def targets(self) -> list[str]:
        return list(self.alone)


def _windows(folder: Path, d: Dumps) -> None:
    """18 small Windows dumps: two profiles, several seeds, seven formats, three ways to name them."""
    plan = [("win10", 1, ("elf", "lime", "kdump", "vmware", "crash", "raw")),
            ("win10", 2, ("elf", "lime", "kdump", "raw")),
            ("win7", 3, ("lime", "vmware", "raw")),
            ("win10", 4, ("elf", "lime", "kdump")),
            ("win7", 5, ("lime", "raw"))]
    for profile, seed, formats in plan:
        mem = pymemflow.open(f"demo:{profile},seed={seed},size=32m,hints=true")
        try:
            for fmt in formats:
                base = folder / f"{profile}-s{seed}"
                if fmt in ("elf", "lime", "raw"):
                    path = base.with_suffix(f".{fmt}")
                    dump_physical(mem, path, fmt)
                elif fmt == "kdump":
                    path = write_kdump(mem, base.with_suffix(".kdump"))
                elif fmt == "vmware":
                    path = write_vmware(mem, base.with_suffix(".vmss"))
                else:
                    path = write_crashdump(mem, base.with_suffix(".dmp"), is64=profile == "win10")
                if fmt == "raw":  # no magic: named as a connector spec, or as a whole chain
                    word = f"raw:{path}" if seed % 2 else f"-c raw:{path} -o win32"
                    d.alone[word] = ["-c", f"raw:{path}", "-o", "win32"]
                else:
                    word = str(path)
                    d.alone[word] = ["-c", f"auto:{path}", "-o", "win32"]
                d.windows.append(word)
        finally:
            mem.close()


@pytest.fixture(scope="session")
def windows_dumps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dumps]:
    folder = tmp_path_factory.mktemp("fleet-dumps")
    d = Dumps(folder)
    _windows(folder, d)
    corrupt = folder / "corrupt.elf"  # an ELF header whose program headers point past the file's end
    corrupt.write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x04\x00\x3e\x00" + b"\xff" * 44)
    d.corrupt = str(corrupt)
    d.alone[d.corrupt] = ["-c", f"auto:{corrupt}", "-o", "win32"]
    d.missing = str(folder / "missing.dmp")
    d.alone[d.missing] = ["-c", f"auto:{d.missing}", "-o", "win32"]
    yield d
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def linux_dumps(guest_x64: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[str]]]:
    """The testbed guest dumped by QEMU (ELF and kdump-zlib) and a LiME written from the ELF with
    the project's writer: target words (whole chains, -o linux) -> CLI chain to run alone."""
    folder = tmp_path_factory.mktemp("fleet-linux")
    elf = guest_x64.dump(folder / "guest.elf", "elf")  # type: ignore[attr-defined]
    kdump = guest_x64.dump(folder / "guest.kdump", "kdump-zlib")  # type: ignore[attr-defined]
    lime = folder / "guest.lime"
    mem = pymemflow.open(str(elf))
    try:
        dump_physical(mem, lime, "lime")
    finally:
        mem.close()
    out = {f"-c auto:{p} -o linux": ["-c", f"auto:{p}", "-o", "linux"] for p in (elf, kdump, lime)}
    yield out
    shutil.rmtree(folder, ignore_errors=True)


def run_alone(chain: list[str], command: list[str]) -> tuple[list[dict], str | None]:
    """The CLI run on one target by itself (in this process): its --json records, or its error line."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main([*chain, *command, "--json"])
    if code != 0:
        lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("pymemflow: error: ")]
        return [], lines[-1].removeprefix("pymemflow: error: ") if lines else f"exit {code}"
    data = json.loads(out.getvalue())
    return (data if isinstance(data, list) else [data]), None


def by_target(records: list[dict]) -> dict[str, tuple[list[dict], str | None]]:
    """Fleet records grouped back per target: (records without the target field, error or None)."""
    grouped: dict[str, tuple[list[dict], str | None]] = {}
    for r in records:
        rows, err = grouped.get(r["target"], ([], None))
        rest = {k: v for k, v in r.items() if k != "target"}
        if "error" in rest and set(rest) == {"error"}:
            err = rest["error"]
        else:
            rows.append(rest)
        grouped[r["target"]] = (rows, err)
    return grouped


class DaskCluster:
    """A real scheduler and workers, each its own `dask` process, on 127.0.0.1."""

    def __init__(self, folder: Path, n_workers: int = 2) -> None:
        self.folder = folder
        self.file = folder / "scheduler.json"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[Path] = []
        self.scheduler = self._spawn("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0",
                                                   "--no-dashboard", "--scheduler-file", str(self.file)])
        self._wait(lambda: self.file.exists() and self.file.stat().st_size > 0, "scheduler file")
        self.address = json.loads(self.file.read_text())["address"]
        for i in range(n_workers):
            self.add_worker(f"w{i + 1}")
        from distributed import Client

        with Client(self.address, timeout="30s") as c:
            c.wait_for_workers(n_workers, timeout=120)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = self.folder / f"{name}.log"
        self.logs.append(log)
        p = subprocess.Popen([str(DASK), *args], stdout=subprocess.DEVNULL, stderr=log.open("wb"),
                             start_new_session=True)
        self.procs[name] = p
        return p

    def add_worker(self, name: str) -> None:
        # --no-nanny: a killed worker stays dead, so its tasks must finish on the other one.
        self._spawn(name, ["worker", "--scheduler-file", str(self.file), "--nthreads", "1", "--no-nanny",
                           "--no-dashboard", "--host", "127.0.0.1", "--name", name, "--memory-limit", "0"])

    @staticmethod
    def _wait(ok: object, what: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while not ok():  # type: ignore[operator]
            if time.monotonic() > end:
                raise TimeoutError(f"dask {what} did not appear in {timeout} s")
            time.sleep(0.1)

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    c = DaskCluster(tmp_path_factory.mktemp("dask-q19"))
    try:
        yield c
    finally:
        c.close()
