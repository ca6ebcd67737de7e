"""Real Windows PE files for the PE parser tests, made here with clang + lld-link (Wine's files may not be
copied into the repository). For each of x86_64 and i386 it links, like Windows itself lays them out:

- ``ntdll.dll``: 160 exported functions and two exported data items;
- ``kernel32.dll``: 120 functions of its own, 40 forwarders to ntdll (``K32Fwd_i = ntdll.Rtl_i``) and code
  that imports 24 ntdll functions by name and two by ordinal through ntdll's import library;
- ``ntoskrnl.exe`` (x86_64 only): a native image exporting ``PsInitialSystemProcess`` and ``NtBuildNumber``
  (data) among 140 functions, with a CodeView record and a PDB.

The linker writes genuine export/import/relocation directories; pefile is the independent reader.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

TOOLS = ("clang", "lld-link")
TARGETS = {"x86_64": "x86_64-pc-windows-msvc", "i386": "i686-pc-windows-msvc"}
NTDLL_FUNCS = 160
K32_FUNCS = 120
K32_FORWARDS = 40
K32_IMPORTS = 24


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def _run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")


def _cc(arch: str, src: str, obj: str, cwd: Path) -> None:
    _run(["clang", f"--target={TARGETS[arch]}", "-O1", "-fno-builtin", "-c", src, "-o", obj], cwd)


def _ntdll(d: Path, arch: str) -> None:
    funcs = "\n".join(f"int Rtl_{i}(int x) {{ return x * {i + 3} + {i}; }}" for i in range(NTDLL_FUNCS))
    (d / "ntdll.c").write_text(f"int NtdllVersion = 10;\nchar NtdllBanner[32] = \"pymemflow test ntdll\";\n{funcs}\n"
                               "int __stdcall DllMain(void *h, unsigned r, void *p) { return 1; }\n")
    # ordinals fixed so kernel32 can import two of them by number only
    exports = [f"  Rtl_{i} @{i + 1}" + (" NONAME" if i >= NTDLL_FUNCS - 2 else "") for i in range(NTDLL_FUNCS)]
    (d / "ntdll.def").write_text("LIBRARY ntdll.dll\nEXPORTS\n" + "\n".join(exports)
                                 + "\n  NtdllVersion DATA\n  NtdllBanner DATA\n")
    _cc(arch, "ntdll.c", "ntdll.obj", d)
    _run(["lld-link", "/dll", "/nodefaultlib", "/entry:DllMain", "/def:ntdll.def", "/out:ntdll.dll",
          "/implib:ntdll.lib", "ntdll.obj"], d)


def _kernel32(d: Path, arch: str) -> None:
    decls = "\n".join(f"__declspec(dllimport) int Rtl_{i}(int);" for i in range(K32_IMPORTS))
    ords = [NTDLL_FUNCS - 2, NTDLL_FUNCS - 1]  # exported NONAME: imported by ordinal
    decls += "\n" + "\n".join(f"__declspec(dllimport) int Rtl_{i}(int);" for i in ords)
    calls = " + ".join(f"Rtl_{i}(x)" for i in [*range(K32_IMPORTS), *ords])
    own = "\n".join(f"int Base_{i}(int x) {{ return x ^ {i * 7 + 1}; }}" for i in range(K32_FUNCS))
    (d / "kernel32.c").write_text(f"{decls}\n{own}\nint UseNtdll(int x) {{ return {calls}; }}\n"
                                  "int __stdcall DllMain(void *h, unsigned r, void *p) { return UseNtdll(1) != 0; }\n")
    exports = [f"  Base_{i}" for i in range(K32_FUNCS)] + ["  UseNtdll"]
    exports += [f"  K32Fwd_{i} = ntdll.Rtl_{i}" for i in range(K32_FORWARDS)]
    (d / "kernel32.def").write_text("LIBRARY kernel32.dll\nEXPORTS\n" + "\n".join(exports) + "\n")
    _cc(arch, "kernel32.c", "kernel32.obj", d)
    _run(["lld-link", "/dll", "/nodefaultlib", "/entry:DllMain", "/def:kernel32.def", "/out:kernel32.dll",
          "kernel32.obj", "ntdll.lib"], d)


def _ntoskrnl(d: Path) -> None:
    funcs = "\n".join(f"__declspec(dllexport) long long Ke_{i}(long long x) {{ return x + {i}; }}"
                      for i in range(140))
    (d / "ntoskrnl.c").write_text(
        "__declspec(dllexport) void *PsInitialSystemProcess;\n"
        "__declspec(dllexport) unsigned long NtBuildNumber = 0xF0004A61;\n"
        f"{funcs}\n"
        "long long KiSystemStartup(void *p) { PsInitialSystemProcess = p; return Ke_1((long long)p); }\n")
    _run(["clang", "--target=x86_64-pc-windows-msvc", "-g", "-gcodeview", "-O1", "-c", "ntoskrnl.c",
          "-o", "ntoskrnl.obj"], d)
    _run(["lld-link", "/debug", "/entry:KiSystemStartup", "/subsystem:native", "/nodefaultlib", "/driver",
          "/base:0x140000000", "/out:ntoskrnl.exe", "/pdb:ntkrnlmp.pdb", "ntoskrnl.obj"], d)


def build_all(out: Path) -> dict[str, Path]:
    """Build every PE under ``out/<arch>/``; returns the arch folders."""
    dirs = {}
    for arch in TARGETS:
        d = out / arch
        d.mkdir(parents=True, exist_ok=True)
        _ntdll(d, arch)
        _kernel32(d, arch)
        if arch == "x86_64":
            _ntoskrnl(d)
        dirs[arch] = d
    return dirs
