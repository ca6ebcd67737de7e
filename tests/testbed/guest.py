"""Boot, inspect and stop testbed guests: Debian kernels under QEMU/TCG, two QMP sockets, serial log.

``boot(kind, **knobs)`` starts a daemonized QEMU, waits for ``TESTBED_READY`` on the serial log and returns a
:class:`Guest` whose ``info`` holds the facts tests use (``PID``, ``QMP``/``QMP2``, ``SERIAL``, ``RAMFILE``,
``MARKER``, ``MARKER_PA0`` ...), also written to ``RUN/NAME/info.env``. Knobs (string values, as environment
style keys): ``ARCH`` x86_64|i386, ``PAE`` 1|0, ``CPU`` (``qemu64,+la57``: 5-level paging), ``MACHINE`` pc|q35,
``MEM`` (QEMU -m syntax), ``RAM`` shm|anon (shm: a file in /dev/shm the raw connector can map), ``KASLR`` 1|0,
``SYMS`` sample|full|none, ``BUSY`` 1|0 (the marker spins), ``TCP``/``UDP`` (the worker's ports), ``SMP``,
``APPEND`` (extra kernel command line), ``KERNEL`` (a vmlinuz path or a Debian kernel package: extra kernels),
``INITRD`` (a prepared initramfs), ``ACCEL`` (QEMU ``-accel``: ``tcg`` by default, ``tcg,tb-size=64`` for a
small translation cache, ``kvm``), ``TIMEOUT`` (seconds to READY), ``SUFFIX`` (part of the unique name).
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

from testbed import groundtruth, provision
from testbed.initramfs import build as build_initramfs
from testbed.qmp import QMP
from testbed.truth import GroundTruth, parse_ground_truth

PRESETS: dict[str, dict[str, str]] = {
    "x64": {"ARCH": "x86_64"},
    "la57": {"ARCH": "x86_64", "CPU": "qemu64,+la57"},
    "pae": {"ARCH": "i386", "PAE": "1"},
    "x86": {"ARCH": "i386", "PAE": "0"},
    "q35": {"ARCH": "x86_64", "MACHINE": "q35", "MEM": "4G"},
}
"""Guest kinds: x86-64 4-level, x86-64 5-level (LA57), i386 PAE, i386 2-level, x86-64 q35 with 4 GiB."""
DEFAULTS = {"ACCEL": "tcg", "RAM": "shm", "MEM": "512M", "KASLR": "1", "SYMS": "sample", "BUSY": "0", "MACHINE": "pc", "SMP": "1",
            "TCP": "7777", "UDP": "7778", "TIMEOUT": "600"}
RUN = provision.HOME / "run"
_running: dict[str, Guest] = {}


class BootError(RuntimeError):
    """QEMU did not start or the guest did not reach TESTBED_READY (the message carries the serial tail)."""


def skip_reason() -> str | None:
    """Why guests cannot run here at all (None: they can, possibly after first-use set-up)."""
    if not Path("/dev/shm").is_dir():
        return "no /dev/shm on this machine (guest RAM files live there)"
    need = provision.missing_host_packages(("x86_64",))
    if need and (os.geteuid() != 0 or not shutil.which("apt-get")):
        return (f"the QEMU testbed needs {', '.join(need)} and this user cannot install them; run as root: "
                f"apt-get install -y {' '.join(need)}  (or: {provision.SETUP_COMMAND})")
    return None


@dataclass
class Guest:
    """A running testbed guest: ``info`` holds its KEY=VALUE facts, ``env`` the knobs it was booted with."""

    name: str
    info: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return int(self.info["PID"])

    @property
    def qmp(self) -> str:
        return self.info["QMP"]

    @property
    def qmp2(self) -> str:
        return self.info["QMP2"]

    @property
    def serial(self) -> Path:
        return Path(self.info["SERIAL"])

    @property
    def ramfile(self) -> str | None:
        return self.info.get("RAMFILE")

    @property
    def run_dir(self) -> Path:
        return self.serial.parent

    @property
    def arch(self) -> str:
        return self.info["ARCH"]

    def serial_lines(self, prefix: str = "TESTBED_") -> list[str]:
        text = self.serial.read_text(errors="replace")
        return [ln.rstrip("\r") for ln in text.split("\n") if ln.startswith(prefix)]

    @cached_property
    def truth(self) -> GroundTruth:
        """Everything the guest's init printed, parsed (processes, threads, fds, sockets, modules, maps ...)."""
        return parse_ground_truth(self.serial_lines(""))

    def ground_truth(self, *extra: str, qmp: str | None = None) -> dict[str, Any]:
        """QEMU's own translations (``gva2gpa``/``xp``) on the second QMP socket; options as groundtruth's CLI."""
        return groundtruth.run([qmp or self.qmp2, "--serial", str(self.serial), *extra])

    def dump(self, out: Path, fmt: str = "elf", paging: bool = False) -> Path:
        """QEMU's ``dump-guest-memory``: an ELF core (with VMCOREINFO) or kdump-zlib / kdump-* formats."""
        out = Path(out).resolve()
        args: dict[str, Any] = {"paging": paging, "protocol": f"file:{out}", "detach": False}
        if fmt != "elf":
            args["format"] = fmt
        with QMP(self.qmp, timeout=900) as q:
            q.execute("dump-guest-memory", args)
        return out

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """QMP ``quit``, then SIGTERM and SIGKILL by pid; removes the RAM file. Safe to call twice."""
        _running.pop(self.name, None)
        if self.alive():
            try:
                with QMP(self.qmp, timeout=5) as q:
                    q.execute("quit")
            except (OSError, RuntimeError):
                pass
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None and self.alive():
                    os.kill(self.pid, sig)
                for _ in range(50):
                    if not self.alive():
                        break
                    time.sleep(0.1)
        if self.ramfile:
            Path(self.ramfile).unlink(missing_ok=True)
        (self.run_dir / "qemu.pid").unlink(missing_ok=True)


def _cannot_run(reason: str) -> NoReturn:
    """Under pytest a skip with the reason (it names the command to run); elsewhere an error."""
    if "pytest" in sys.modules:
        import pytest

        pytest.skip(reason)
    raise provision.ProvisionError(reason)


def _flavour(e: dict[str, str]) -> str:
    """The kernel to fetch (and whose modules go into the initramfs): a package named by KERNEL, or the arch's."""
    k = e.get("KERNEL")
    if k and not Path(k).exists():
        return k
    return "x86_64" if e["ARCH"] == "x86_64" else "i386" if e.get("PAE", "1") == "1" else "i386-nopae"


def _kernel(e: dict[str, str]) -> Path:
    k = e.get("KERNEL")
    return Path(k) if k and Path(k).exists() else provision.vmlinuz(_flavour(e))


def _kv(line: str, key: str) -> str:
    m = re.search(rf"\b{key}=(\S+)", line)
    return m.group(1) if m else ""


def boot(kind: str = "x64", **knobs: str) -> Guest:
    """Boot a guest of ``kind`` (see PRESETS) with knobs; set-up happens on first use."""
    reason = skip_reason()
    if reason:
        _cannot_run(reason)
    e = {**DEFAULTS, **PRESETS[kind], **{k: str(v) for k, v in knobs.items()}}
    name = f"pmf{os.getpid()}{kind}{e.pop('SUFFIX', '')}"
    e["NAME"] = name
    try:
        provision.ensure(e["ARCH"])
        kernel = _kernel(e)
        initrd = Path(e["INITRD"]) if e.get("INITRD") else build_initramfs(_flavour(e), e["ARCH"])
    except provision.ProvisionError as err:
        if os.geteuid() == 0:
            raise  # root could have installed it: a real failure (network, mirror), not a missing machine part
        _cannot_run(str(err))
    d = RUN / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    append = f"console=ttyS0 panic=-1 tb.syms={e['SYMS']} tb.busy={e['BUSY']} tb.tcp={e['TCP']} tb.udp={e['UDP']}"
    if e["KASLR"] == "0":
        append += " nokaslr"
    if e.get("APPEND"):
        append += " " + e["APPEND"]
    machine = e["MACHINE"] + (",accel=tcg" if e["ACCEL"] == "tcg" else "")
    mem = ["-m", e["MEM"]]
    ramfile = None
    if e["RAM"] == "shm":
        ramfile = f"/dev/shm/pmf-testbed-{name}.ram"
        Path(ramfile).unlink(missing_ok=True)
        mem += ["-object", f"memory-backend-file,id=pc.ram,size={e['MEM']},mem-path={ramfile},share=on"]
        machine += ",memory-backend=pc.ram"
    qemu = "qemu-system-x86_64" if e["ARCH"] == "x86_64" else "qemu-system-i386"
    cpu = e.get("CPU") or ("qemu64" if e["ARCH"] == "x86_64" else "max")
    accel = [] if e["ACCEL"] == "tcg" else ["-accel", e["ACCEL"]]
    cmd = [qemu, "-name", f"guest={name}", "-machine", machine, *accel, "-cpu", cpu, "-smp", e["SMP"], *mem,
           "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-device", "vmcoreinfo",
           "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
           "-serial", f"file:{d}/serial.log", "-serial", f"file:{d}/serial1.log",
           "-qmp", f"unix:{d}/qmp.sock,server=on,wait=off", "-qmp", f"unix:{d}/qmp2.sock,server=on,wait=off",
           "-pidfile", f"{d}/qemu.pid", "-daemonize"]
    (d / "cmdline.txt").write_text(shlex.join(cmd) + "\n")
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise BootError(f"{qemu} failed to start guest {name} (exit {r.returncode}):\n{r.stderr[-3000:]}")
    info = {"NAME": name, "PID": (d / "qemu.pid").read_text().strip(), "QMP": f"{d}/qmp.sock",
            "QMP2": f"{d}/qmp2.sock", "SERIAL": f"{d}/serial.log"}
    if ramfile:
        info["RAMFILE"] = ramfile
    g = Guest(name, info, e)
    _running[name] = g
    t1 = time.time()
    serial = d / "serial.log"
    try:
        while True:
            text = serial.read_text(errors="replace") if serial.exists() else ""
            if "\nTESTBED_ERROR" in text:
                err = text[text.index("\nTESTBED_ERROR") + 1:].split("\n", 1)[0]
                raise BootError(f"guest {name}: a guest program failed: {err}")
            if re.search(r"\nTESTBED_READY [^\n]*\n", text):  # the whole line: it carries the nonce
                break
            if not g.alive():
                raise BootError(f"QEMU of guest {name} exited before TESTBED_READY; serial log tail:\n{text[-3000:]}")
            if time.time() - t0 > float(e["TIMEOUT"]):
                raise BootError(f"guest {name} not READY after {e['TIMEOUT']} s; serial log tail:\n{text[-3000:]}")
            time.sleep(0.1)
    except BaseException:
        g.stop()
        raise
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    first = {ln.split(" ", 1)[0]: ln for ln in reversed(lines) if ln.startswith("TESTBED_")}
    page0 = next((ln for ln in lines if ln.startswith("TESTBED_MARKER_PAGE i=0 ")), "")
    nonce = _kv(first.get("TESTBED_READY", ""), "nonce")
    info.update({"ARCH": e["ARCH"], "MEM": e["MEM"], "RAM": e["RAM"], "MACHINE": e["MACHINE"], "CPU": cpu,
                 "KASLR": e["KASLR"], "KERNEL": str(kernel), "INITRD": str(initrd)})
    info.update({"NONCE": nonce, "MARKER": f"TBMARK:{nonce}:00",
                 "SHELL_MARKER": _kv(first.get("TESTBED_SHELL_MARKER", ""), "string"),
                 "MARKER_PID": _kv(first.get("TESTBED_MARKER_PROC", ""), "pid"),
                 "MARKER_VA": _kv(first.get("TESTBED_MARKER_PROC", ""), "va"), "MARKER_PA0": _kv(page0, "pa"),
                 "WORKER_PID": _kv(first.get("TESTBED_WORKER", ""), "pid"), "TCP_PORT": e["TCP"],
                 "UDP_PORT": e["UDP"], "GUEST_UPTIME_AT_READY": _kv(first.get("TESTBED_READY", ""), "uptime"),
                 "QEMU_START_S": f"{t1 - t0:.3f}", "BOOT_TO_READY_S": f"{time.time() - t0:.3f}"})
    (d / "info.env").write_text("".join(f"{k}={v}\n" for k, v in info.items()))
    return g


def find(name: str) -> Guest:
    """A guest started earlier (by any process) from its ``info.env``."""
    env = RUN / name / "info.env"
    if not env.exists():
        raise FileNotFoundError(f"no testbed guest named {name} ({env} missing)")
    info = dict(ln.split("=", 1) for ln in env.read_text().splitlines() if "=" in ln)
    return Guest(name, info)


@atexit.register
def _stop_leftovers() -> None:
    """Guests whose fixture finalizer never ran (an interrupted session) do not outlive this process."""
    for g in list(_running.values()):
        g.stop()
