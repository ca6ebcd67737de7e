"""A synthetic Windows machine (x64: Windows 7 SP1 .. 11, eight builds; x86-PAE Windows 7) for tests and the demo.

Public API::

    from pymemflow.demo import build_image, PROFILES
    img = build_image("win10-19041-x64", seed=0, size=1 << 30)   # or "win7-7601-x86pae" / "win10" / "win7"
    img.facts            # ground truth: processes, modules, dtb, kernel_base, symbols, keyboard, ...
    img.write_raw(path)  # flat raw image;  img.array() / img.fill(buf) / img.read(pa, n)
"""

from .machine import ALIASES, PROFILES, Profile, SyntheticImage, build_image, table_profile

__all__ = ["ALIASES", "PROFILES", "Profile", "SyntheticImage", "build_image", "table_profile"]
