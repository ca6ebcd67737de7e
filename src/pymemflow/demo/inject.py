"""Injected code in the synthetic machine: one private PAGE_EXECUTE_READWRITE region (a VadS VAD, no
file behind it) in explorer.exe holding a small shellcode stub (it walks PEB -> Ldr -> modules, as
real loaders do), and one thread of explorer.exe starting inside it.

Ground truth: ``facts["injected"]`` (pid, start, end, protection, code bytes) and the process's
``injected`` entry.
"""

from __future__ import annotations

from typing import Any

from .memory import PAGE, AddressSpace
from .threads import ThreadMixin

INJECT_PROCESS = "explorer.exe"
INJECT_VA = 0x01F20000
MM_EXECUTE_READWRITE = 6
# xor rcx,rcx; mov rax,gs:[rcx+0x60]; mov rax,[rax+0x18]; mov rsi,[rax+0x20]; lodsq; xchg rax,rsi; lodsq;
# mov rbx,[rax+0x20]; ret -- find the third loaded module's base (kernel32) from the PEB
SHELLCODE_X64 = bytes.fromhex("fc4831c965488b4160488b4018488b702048ad489648ad488b5820c3")
# xor ecx,ecx; mov eax,fs:[ecx+0x30]; mov eax,[eax+0xc]; mov esi,[eax+0x14]; lodsd; xchg eax,esi; lodsd;
# mov ebx,[eax+0x10]; ret
SHELLCODE_X86 = bytes.fromhex("fc31c9648b41308b400c8b7014ad96ad8b5810c3")


class InjectMixin(ThreadMixin):
    def extra_user_vads(self, s: dict[str, Any], a: AddressSpace, pf: dict[str, Any]) -> list[dict[str, Any]]:
        vads = super().extra_user_vads(s, a, pf)
        if s["name"] != INJECT_PROCESS or "injected" in self.facts:
            return vads
        code = SHELLCODE_X64 if self.x64 else SHELLCODE_X86
        a.alloc_map(INJECT_VA, 2, user=True, write=True, nx=False)
        # a jump-pad of nops, the stub at +0x10, then a marker string an analyst would grep for
        a.write(INJECT_VA, b"\x90" * 0x10 + code)
        a.write(INJECT_VA + PAGE, b"pymemflow demo injected payload\0")
        end = INJECT_VA + 2 * PAGE
        pf["injected"] = {"start": INJECT_VA, "end": end, "code_offset": 0x10}
        self.facts["injected"] = {"pid": s["pid"], "process": s["name"], "start": INJECT_VA, "end": end,
                                  "protection": "PAGE_EXECUTE_READWRITE", "code_offset": 0x10,
                                  "first_bytes": (b"\x90" * 0x10 + code)[:64].ljust(64, b"\0").hex()}
        vads.append({"start": INJECT_VA, "end": end - 1, "protection": MM_EXECUTE_READWRITE, "private": True,
                     "type": 0, "file": None})
        return vads
