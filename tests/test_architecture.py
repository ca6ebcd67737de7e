"""The import direction of docs/architecture.md, checked on the source (an AST walk over src/).

Rules (the same text is in docs/architecture.md, "Rules the test enforces"):

1. Direction. Every ``pymemflow`` subpackage has a place in ``DEPENDS`` (what it may import
   directly); it may import those, what they may import (transitively), and the bottom modules
   (``BOTTOM``: ``errors``, ``types``, ``records``). Anything else is a violation, whether the import is at module level,
   inside a function, or under ``if TYPE_CHECKING:``. A new subpackage fails the test until it is
   given a place here and on the page.
2. OS layers are siblings: ``os.win32``, ``os.linux`` and ``os.native`` import ``os.base`` and
   the shared ``os.walk``/``os.caps``/``os.image``/``os.forensics``/``os.timeline`` (walker, size caps,
   module images, forensic records, timeline) and the layers below ``os``, never each other.
3. No function-local imports of pymemflow modules, unless the statement carries a comment
   ``# lazy: <reason>`` (a deliberate lazy import, e.g. of something slow that few calls need).
   Function-local imports of third-party packages (optional dependencies) are not checked here.
4. No import cycles: the graph of module-level imports (``if TYPE_CHECKING:`` blocks left out,
   since they never run) between pymemflow modules has no cycle, so nothing needs a local import
   to break one.

The page itself is checked too (at the end of this file): every path it names exists, its table
places every package, and its diagram draws exactly ``DEPENDS``.
"""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(os.environ.get("PYMEMFLOW_ARCH_SRC", Path(__file__).resolve().parents[1] / "src"))
PKG = SRC / "pymemflow"

BOTTOM = {"errors", "types", "records"}
"""Usable by every package; they import no other pymemflow module (only each other)."""

FRONT_ENDS = ("bench", "serve", "fs", "mount", "gdb")
"""Thin clients of the OS-layer objects (docs/architecture.md); `cli` may start any of them."""

DEPENDS: dict[str, set[str]] = {
    "errors": set(),
    "types": set(),
    "records": set(),  # records -> JSON, the one serialiser of the CLI's --json and the daemon's API
    "remote": set(),  # the daemon's wire format and HTTP client (stdlib), under the remote connector/OS layer
    "mem": set(),
    "live": {"mem"},
    "arch": {"mem"},
    "connectors": {"mem", "live", "remote"},
    "os": {"arch", "live", "remote"},
    "writers": {"connectors"},
    "demo": {"os"},
    "scan": {"os"},  # pattern/string/YARA scans over processes, the kernel, physical memory (a layer on os)
    "plugins": {"demo", "os", "connectors", "writers"},
    **{fe: {"plugins"} for fe in FRONT_ENDS},
    "cli": {*FRONT_ENDS, "scan", ""},
    # fleet runs the CLI's own commands (parser, handlers, records) on every target, so it sits above the CLI;
    # the CLI loads its `fleet` command module (pymemflow.fleet.command) by name only, never imports it.
    "fleet": {"cli"},
    "__main__": {"cli"},
    "": {"plugins"},  # the package root, pymemflow/__init__.py: the public API (pymemflow.open, __version__)
}
"""Direct dependencies; the allowed imports are their transitive closure plus BOTTOM."""

OS_SHARED = {"base", "walk", "caps", "image", "forensics", "timeline", "modpick"}
"""Modules of ``os`` every OS layer may import (the rest of ``os`` are sibling layers)."""

LAZY = re.compile(r"#\s*lazy:\s*\S")


def allowed(layer: str) -> set[str]:
    seen: set[str] = set()
    todo = list(DEPENDS[layer])
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo += DEPENDS[d]
    return seen | BOTTOM | {layer}


@dataclass(frozen=True)
class Import:
    source: str  # module doing the import, e.g. pymemflow.arch.virtual
    target: str  # module (or package) imported, e.g. pymemflow.types
    path: Path
    line: int
    local: bool  # inside a function
    type_checking: bool  # under `if TYPE_CHECKING:`
    lazy_marked: bool

    def where(self) -> str:
        return f"{self.path.relative_to(SRC.parent)}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _comment_lines(text: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string
    return out


def imports_of(path: Path) -> Iterator[Import]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, str(path))
    comments = _comment_lines(text)
    source = module_name(path)
    package = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if node.level:
            base = ".".join(package[: len(package) - node.level + 1])
            mod = f"{base}.{node.module}" if node.module else base
        else:
            mod = node.module or ""
        # `from pkg import sub` imports the module pkg.sub; `from mod import name` imports mod
        subs = [f"{mod}.{a.name}" for a in node.names if is_module(f"{mod}.{a.name}")]
        return subs if len(subs) == len(node.names) else [mod, *subs]

    def walk(node: ast.AST, local: bool, tc: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                end = child.end_lineno or child.lineno
                marked = any(LAZY.search(comments.get(n, "")) for n in range(child.lineno, end + 1))
                for t in targets(child):
                    if t == "pymemflow" or t.startswith("pymemflow."):
                        yield Import(source, t, path, child.lineno, local, tc, marked)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from walk(child, True, tc)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), local, True)
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), local, tc)
            else:
                yield from walk(child, local, tc)

    yield from walk(tree, False, False)


def all_imports() -> list[Import]:
    return [imp for path in sorted(PKG.rglob("*.py")) for imp in imports_of(path)]


def _name(layer: str) -> str:
    return layer or "the package root"


def direction_violations(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        src, dst = layer_of(imp.source), layer_of(imp.target)
        for layer in (src, dst):
            if layer not in DEPENDS:
                bad.append(f"{imp.where()}: pymemflow.{layer} has no place in the layering: give it one in "
                           "DEPENDS (tests/test_architecture.py) and on docs/architecture.md")
        if src in DEPENDS and dst in DEPENDS and dst not in allowed(src):
            may = ", ".join(sorted(_name(d) for d in allowed(src) - {src})) or "nothing"
            bad.append(f"{imp.where()}: {imp.source} imports {imp.target}: {_name(src)} may import "
                       f"{may}, not {_name(dst)}")
        if src == dst == "os":
            a, b = imp.source.split("."), imp.target.split(".")
            mine, theirs = (a[2] if len(a) > 2 else ""), (b[2] if len(b) > 2 else "")
            if mine and theirs and mine != theirs and theirs not in OS_SHARED:
                bad.append(f"{imp.where()}: {imp.source} imports {imp.target}: OS layers are siblings "
                           "(use os.base, or move the shared code down)")
    return bad


def local_import_violations(imports: list[Import]) -> list[str]:
    return [f"{imp.where()}: {imp.source} imports {imp.target} inside a function: import it at module "
            "level, or mark a deliberate lazy import with '# lazy: <reason>'"
            for imp in imports if imp.local and not imp.lazy_marked]


def cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components (size > 1) of the module-level, run-time import graph."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.local or imp.type_checking:
            continue
        src_parents = {".".join(imp.source.split(".")[:i]) for i in range(1, imp.source.count(".") + 2)}
        parts = imp.target.split(".")
        # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c; the importer's own packages are
        # already being imported, so edges to them are not cycles
        for i in range(2, len(parts) + 1):
            t = ".".join(parts[:i])
            if t not in src_parents:
                graph.setdefault(imp.source, set()).add(t)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    found = all_imports()
    assert len(found) > 300, f"only {len(found)} imports found under {PKG}: wrong source folder?"
    return found


def test_every_package_has_a_place_in_the_layering() -> None:
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    packages |= {p.stem for p in PKG.glob("*.py") if p.stem != "__init__"}
    assert packages - set(DEPENDS) == set(), "give these a place in DEPENDS and on docs/architecture.md"


def test_imports_run_one_way(imports: list[Import]) -> None:
    bad = direction_violations(imports)
    assert not bad, "imports against the direction of docs/architecture.md:\n" + "\n".join(bad)


def test_no_function_local_imports_of_pymemflow_modules(imports: list[Import]) -> None:
    bad = local_import_violations(imports)
    assert not bad, "\n".join(bad)


def test_no_import_cycles(imports: list[Import]) -> None:
    found = cycles(imports)
    assert not found, "import cycles (module level):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_bottom_modules_import_nothing_above_them(imports: list[Import]) -> None:
    for imp in imports:
        if layer_of(imp.source) in BOTTOM:
            assert layer_of(imp.target) in BOTTOM, imp.where()


# ---- the checker itself, on small sources with known answers ---------------------------------------


@pytest.fixture()
def fake_src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(globals(), "SRC", tmp_path)
    monkeypatch.setitem(globals(), "PKG", tmp_path / "pymemflow")
    for d in ("", "mem", "arch", "os", "os/win32", "os/linux", "plugins"):
        (tmp_path / "pymemflow" / d).mkdir(parents=True, exist_ok=True)
        (tmp_path / "pymemflow" / d / "__init__.py").write_text("")
    (tmp_path / "pymemflow" / "types.py").write_text("")
    (tmp_path / "pymemflow" / "os" / "base.py").write_text("")
    return tmp_path / "pymemflow"


def test_checker_catches_upward_local_cycle_and_sibling_imports(fake_src: Path) -> None:
    (fake_src / "mem" / "view.py").write_text(
        "from ..plugins import api\n"                       # upward: mem -> plugins
        "from ..types import x\n"                           # fine
        "def f():\n    from . import phys\n"                # local, unmarked
        "def g():\n    from . import phys  # lazy: slow to build\n"  # local, marked
        "from .phys import P\n")                            # with phys.py's import: a cycle
    (fake_src / "mem" / "phys.py").write_text("from . import view\n")
    (fake_src / "arch" / "virtual.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..os.base import R\n")  # upward
    (fake_src / "os" / "win32" / "k.py").write_text("from ..linux import t\nfrom ..base import b\n")
    (fake_src / "plugins" / "api.py").write_text("")
    imps = all_imports()
    direction = direction_violations(imps)
    assert any("mem/view.py:1" in b and "not plugins" in b for b in direction)
    assert any("arch/virtual.py:3" in b and "not os" in b for b in direction)
    assert any("os/win32/k.py:1" in b and "siblings" in b for b in direction)
    assert not any("os/win32/k.py:2" in b for b in direction) and len(direction) == 3
    local = local_import_violations(imps)
    assert len(local) == 1 and "mem/view.py:4" in local[0]
    assert cycles(imps) == [["pymemflow.mem.phys", "pymemflow.mem.view"]]


def test_checker_fails_on_a_package_without_a_place(fake_src: Path) -> None:
    (fake_src / "newthing").mkdir()
    (fake_src / "newthing" / "__init__.py").write_text("from ..mem import view\n")
    (fake_src / "mem" / "view.py").write_text("")
    bad = direction_violations(all_imports())
    assert bad and "pymemflow.newthing has no place in the layering" in bad[0]


# ---- docs/architecture.md stays true --------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "architecture.md"
PATH_RE = re.compile(r"`((?:src|docs|tests|benchmarks|scripts)/[^`\s]+)`")


def test_every_path_the_architecture_page_names_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    paths = sorted(set(PATH_RE.findall(text)))
    assert len(paths) > 25, "the page should walk the read path file by file"
    missing = [p for p in paths if not (ROOT / p.replace("NAME", "win32")).exists()]
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_the_architecture_page_places_every_package() -> None:
    """The layer table lists every package of DEPENDS (and so of src/, by the test above)."""
    text = PAGE.read_text(encoding="utf-8")
    table = [line for line in text.splitlines() if line.startswith("| `")]
    listed = {name for line in table for name in re.findall(r"`(\w+)`", line.split("|")[1])}
    assert set(DEPENDS) - {"", "__main__"} <= listed


def test_package_docstrings_point_to_a_page_that_exists() -> None:
    pointing = [p for p in PKG.rglob("*.py") if "docs/architecture.md" in p.read_text(encoding="utf-8")]
    assert pointing and PAGE.is_file()


def test_the_diagram_draws_exactly_the_allowed_imports() -> None:
    text = PAGE.read_text(encoding="utf-8")
    block = text.split("```mermaid", 1)[1].split("```", 1)[0]
    drawn = set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", block, re.M))
    wanted = {(k, d) for k, ds in DEPENDS.items() for d in ds if k not in ("", "__main__") and d}
    assert drawn == wanted, f"draw {sorted(wanted - drawn)}, remove {sorted(drawn - wanted)}"
