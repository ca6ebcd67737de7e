"""The synthetic Windows machine: kernel, processes, modules, VADs, keyboard -- at real offsets.

Built deterministically from a seed. Everything an analysis tool reads is real data structures at
the offsets of the profile's kernel (x64: the 10.0.19041.804 ntkrnlmp ISF facts; x86-PAE: Windows 7
SP1 ntkrpamp facts), reached through real page tables from bare physical memory, as on a real box:
the low-1 MiB processor start block, a self-referencing top-level table, ntoskrnl with PE headers,
export table and CodeView record, KUSER_SHARED_DATA, PsActiveProcessHead / PsLoadedModuleList lists.
The parts live in kernel.py, processes.py, userspace.py and vad.py; this module puts them together.
"""

from __future__ import annotations

from ..os.win32.offsets import Win32Offsets
from .image import Module, SyntheticImage
from .network import NetworkMixin
from .processes import ProcessMixin
from .profiles import ALIASES, PROFILES, Profile, table_profile

__all__ = ["ALIASES", "PROFILES", "MachineBuilder", "Module", "Profile", "SyntheticImage", "build_image", "table_profile"]


class MachineBuilder(ProcessMixin, NetworkMixin):
    def build(self) -> SyntheticImage:
        self.layout()
        self.build_kernel_space()
        self.build_kernel_image()
        self.build_kuser()
        self.build_kernel_modules()
        self.build_object_manager()  # demo/handles.py
        self.build_processes()
        self.build_network()
        self.finish_kernel_globals()
        self.build_low_stub()
        return SyntheticImage(self.size, self.phys.pages, self.facts)


def build_image(profile: str | Profile = "win10-19041-x64", seed: int = 0, size: int | None = None,
                offsets: Win32Offsets | None = None, processes: int = 0) -> SyntheticImage:
    """Build a synthetic Windows machine's physical memory and its ground truth, deterministically.
    ``profile``: a name or alias of :data:`PROFILES`, or a :class:`Profile` (e.g. ``table_profile(guid_age)``).
    ``processes``: at least this many processes (extra svchost.exe; for listing benchmarks)."""
    p = profile if isinstance(profile, Profile) else PROFILES.get(ALIASES.get(profile, profile))
    if p is None:
        raise ValueError(f"unknown synthetic profile {profile!r} (known: {', '.join([*PROFILES, *ALIASES])})")
    b = MachineBuilder(p, seed, size or p.default_size, offsets)
    b.user_spaces = []
    b.sessions = {}
    b.pae_spaces = []
    b.min_processes = processes
    return b.build()
