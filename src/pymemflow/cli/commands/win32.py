"""Windows-specific commands: ``keys`` (the async keyboard state, live)."""

from __future__ import annotations

import time
from typing import Any

from ...errors import ArgumentError
from ...plugins.api import parse_duration
from ..context import CommandContext

VK_NAMES = {0x01: "LBUTTON", 0x02: "RBUTTON", 0x04: "MBUTTON", 0x08: "BACK", 0x09: "TAB", 0x0D: "RETURN",
            0x10: "SHIFT", 0x11: "CONTROL", 0x12: "MENU", 0x13: "PAUSE", 0x14: "CAPITAL", 0x1B: "ESCAPE",
            0x20: "SPACE", 0x25: "LEFT", 0x26: "UP", 0x27: "RIGHT", 0x28: "DOWN", 0x2E: "DELETE",
            0x5B: "LWIN", 0x5C: "RWIN", 0xA0: "LSHIFT", 0xA1: "RSHIFT", 0xA2: "LCONTROL", 0xA3: "RCONTROL",
            0xA4: "LMENU", 0xA5: "RMENU"}


def vk_name(vk: int) -> str:
    if 0x30 <= vk <= 0x39 or 0x41 <= vk <= 0x5A:
        return chr(vk)
    if 0x70 <= vk <= 0x87:
        return f"F{vk - 0x6F}"
    return VK_NAMES.get(vk, f"VK_{vk:02X}")


def register(sub: Any) -> None:
    p = sub.add_parser("keys", help="Windows: keys held down (win32k async key state), live")
    p.add_argument("--once", action="store_true", help="print the state once and exit")
    p.add_argument("--interval", type=parse_duration, default=0.1, help="refresh period (default 100ms)")
    p.add_argument("--count", type=int, default=0, help="stop after this many refreshes (0: until Ctrl-C)")
    p.set_defaults(handler=run_keys)


def _rows(down: list[int]) -> list[dict[str, Any]]:
    return [{"vk": vk, "name": vk_name(vk)} for vk in down]


def run_keys(ctx: CommandContext) -> int:
    os_layer = ctx.os()
    if not hasattr(os_layer, "keyboard"):
        raise ArgumentError(f"keys: the {getattr(os_layer, 'name', 'OS')} layer has no keyboard state (Windows only)")
    kb = os_layer.keyboard()
    if ctx.args.once or ctx.json:
        ctx.emit(_rows(kb.down_keys()), ["vk", "name"])
        return 0
    last: list[int] | None = None
    n = 0
    try:
        while True:
            down = kb.down_keys()
            if down != last:
                stamp = time.strftime("%H:%M:%S")
                ctx.out.write(f"{stamp}  {' '.join(vk_name(v) for v in down) or '(none)'}\n")
                ctx.out.flush()
                last = down
            n += 1
            if ctx.args.count and n >= ctx.args.count:
                return 0
            time.sleep(ctx.args.interval)
    except KeyboardInterrupt:
        return 0
