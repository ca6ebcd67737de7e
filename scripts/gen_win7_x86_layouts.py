#!/usr/bin/env python3
"""Generate ``tests/data/windows/win7_sp1_x86_layouts.json`` from a Volatility 2 vtypes file.

Volatility 2's ``win7_sp1_x86_vtypes.py`` (GPL-2) describes the Windows 7 SP1 x86 kernel structures as one
Python literal ``{type: [size, {member: [offset, type spec]}]}``. The offsets and sizes are facts about
Microsoft's kernel; the file itself is not carried. This script parses the literal without running it
(``ast.literal_eval``; its ``dict(a=..)`` calls become literals first) and writes the facts as JSON, one
type a line (sorted, so a regenerated table diffs cleanly). Enumeration choice lists are dropped: only the
enum's underlying integer type is a layout fact the tests need.

Run: ``python scripts/gen_win7_x86_layouts.py PATH/TO/win7_sp1_x86_vtypes.py [--out FILE]``.
``scripts/gen_win_offsets.py`` and ``tests/win32_synth/vtypes_isf.py`` read the table it writes.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/data/windows/win7_sp1_x86_layouts.json"


def _calls_to_dicts(node: ast.AST) -> ast.AST:
    """vtypes write ``dict(start_bit=..)``: turn those calls into dict literals for ``literal_eval``."""

    class T(ast.NodeTransformer):
        def visit_Call(self, n: ast.Call) -> ast.AST:
            self.generic_visit(n)
            if isinstance(n.func, ast.Name) and n.func.id == "dict" and not n.args:
                return ast.Dict(keys=[ast.Constant(k.arg) for k in n.keywords], values=[k.value for k in n.keywords])
            return n

    return ast.fix_missing_locations(T().visit(node))


def _spec(t: Any) -> Any:
    """A member's type spec with enum choice lists left out (only the underlying type is kept)."""
    if isinstance(t, list):
        if t and t[0] == "Enumeration" and len(t) > 1 and isinstance(t[1], dict):
            return ["Enumeration", {"target": t[1].get("target", "long")}]
        return [_spec(x) for x in t]
    if isinstance(t, dict):
        return {k: _spec(v) for k, v in t.items()}
    return t


def read_vtypes(path: Path) -> dict[str, Any]:
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            types = ast.literal_eval(_calls_to_dicts(node.value))
            return {name: [int(size), {m: [int(off), _spec(t)] for m, (off, t) in members.items()}]
                    for name, (size, members) in types.items()}
    raise SystemExit(f"{path}: no top-level dict literal of types found")


def render(types: dict[str, Any], source: str) -> str:
    lines = ['{"_source": ' + json.dumps(source) + ","]
    names = sorted(types)
    for i, name in enumerate(names):
        sep = "," if i < len(names) - 1 else ""
        lines.append(f"{json.dumps(name)}: {json.dumps(types[name], sort_keys=True)}{sep}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("vtypes", type=Path, help="Volatility 2's win7_sp1_x86_vtypes.py")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    types = read_vtypes(a.vtypes)
    a.out.write_text(render(types, "Windows 7 SP1 x86 structure layouts (facts) read from Volatility 2's "
                                   "win7_sp1_x86_vtypes.py by scripts/gen_win7_x86_layouts.py"))
    print(f"{len(types)} types -> {a.out}")
    return 0


def load_layouts(path: Path = OUT) -> dict[str, Any]:
    """The generated table as ``{type: [size, {member: [offset, spec]}]}`` (the ``_source`` note removed)."""
    doc = json.loads(path.read_text())
    doc.pop("_source", None)
    return doc


if __name__ == "__main__":
    sys.exit(main())
