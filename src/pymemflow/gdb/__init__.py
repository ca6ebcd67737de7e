"""``pymemflow gdbserver``: a GDB remote-serial-protocol stub over a process's, the kernel's or
physical memory, built on the OS layer's objects (see docs/gdbserver.md)."""

from .server import GdbServer, Session
from .target import GdbTarget, build_target

__all__ = ["GdbServer", "GdbTarget", "Session", "build_target"]
