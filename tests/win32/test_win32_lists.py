"""List walks on hand-made LIST_ENTRY chains: intact, looping, dangling, null, huge; software PTEs; key bits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from win32_sparse import SparseMemory

from pymemflow.os.win32.keyboard import down_keys, is_down
from pymemflow.os.win32.listwalk import walk_list
from pymemflow.os.win32.pte import WindowsPteHook, decode_pte

HEAD = 0x10000


def ring(mem: SparseMemory, nodes: list[int], head: int = HEAD, ptr: int = 8) -> None:
    """A circular doubly linked list head -> nodes... -> head."""
    chain = [head, *nodes, head]
    put = mem.put_u64 if ptr == 8 else mem.put_u32
    for a, b in zip(chain, chain[1:], strict=False):
        put(a, b)
        put(b + ptr, a)


def test_intact_ring() -> None:
    mem = SparseMemory()
    nodes = [0x20000 + 0x100 * i for i in range(10)]
    ring(mem, nodes)
    w = walk_list(mem, HEAD)
    assert w.entries == nodes and w.complete


def test_intact_ring_32bit() -> None:
    mem = SparseMemory(4)
    nodes = [0x30000 + 0x40 * i for i in range(7)]
    ring(mem, nodes, ptr=4)
    w = walk_list(mem, HEAD, ptr_size=4)
    assert w.entries == nodes and w.complete


def test_loop_not_through_head_stops_with_warning() -> None:
    mem = SparseMemory()
    nodes = [0x20000 + 0x100 * i for i in range(5)]
    ring(mem, nodes)
    mem.put_u64(nodes[4], nodes[1])  # smeared: last element points back into the middle
    w = walk_list(mem, HEAD)
    assert w.entries == nodes
    assert len(w.warnings) == 1 and "loop" in w.warnings[0]


def test_dangling_pointer_yields_prefix() -> None:
    mem = SparseMemory()
    nodes = [0x20000 + 0x100 * i for i in range(5)]
    ring(mem, nodes)
    mem.put_u64(nodes[2], 0xDEAD0000)  # unmapped
    w = walk_list(mem, HEAD)
    assert w.entries == nodes[:3] + [0xDEAD0000]
    assert "dangling" in w.warnings[0]


def test_null_link_and_unreadable_head() -> None:
    mem = SparseMemory()
    nodes = [0x20000, 0x20100]
    ring(mem, nodes)
    mem.put_u64(nodes[1], 0)
    w = walk_list(mem, HEAD)
    assert w.entries == nodes and "null" in w.warnings[0]
    w2 = walk_list(mem, 0x999000)
    assert w2.entries == [] and "cannot read head" in w2.warnings[0]


def test_cap_bounds_a_huge_list() -> None:
    mem = SparseMemory()
    nodes = [0x100000 + 0x10 * i for i in range(500)]
    ring(mem, nodes)
    w = walk_list(mem, HEAD, cap=100)
    assert len(w.entries) == 100 and "cap" in w.warnings[0]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 15), min_size=1, max_size=12), st.integers(0, 2**20))
def test_random_link_garbage_always_terminates(targets: list[int], junk: int) -> None:
    """Every node's Flink points at a random node, the head, or junk: the walk ends, bounded."""
    mem = SparseMemory()
    nodes = [0x20000 + 0x100 * i for i in range(16)]
    pool = [HEAD, *nodes, junk << 4]
    mem.put_u64(HEAD, nodes[0])
    for i, n in enumerate(nodes):
        mem.put_u64(n, pool[targets[i % len(targets)] % len(pool)])
    w = walk_list(mem, HEAD, cap=64)
    assert len(w.entries) <= 17
    assert len(set(w.entries)) == len(w.entries)


def test_software_pte_kinds() -> None:
    assert decode_pte(0, "x64").kind == "empty"
    assert decode_pte(0x8000000012345867, "x64").pfn == 0x12345
    assert decode_pte(0x12345867, "x64").kind == "valid"
    t = decode_pte((0x54321 << 12) | (1 << 11) | (4 << 5), "x64")
    assert (t.kind, t.pfn, t.protection) == ("transition", 0x54321, 4)
    p = decode_pte((0x777 << 32) | (1 << 1) | (4 << 5), "x64")
    assert (p.kind, p.pagefile, p.pagefile_offset) == ("pagefile", 1, 0x777)
    assert decode_pte((1 << 10) | (1 << 11), "x64").kind == "prototype"
    assert decode_pte(4 << 5, "x86pae").kind == "demand-zero"
    assert decode_pte((0x777 << 12) | 2, "x86").kind == "pagefile"


def test_pte_hook_resolves_only_last_level_transitions() -> None:
    h = WindowsPteHook("x64")
    pte = (0x54321 << 12) | (1 << 11)
    assert h(pte, 3, 0x7FF612345ABC) == 0x54321ABC
    assert h(pte, 2, 0x7FF612345ABC) is None
    assert h(pte | (1 << 10), 3, 0x1000) is None
    assert h((9 << 32) | 2, 3, 0x7FF600001234) is None
    assert h.pagefile == {0x7FF600001000: (1, 9)}
    off = WindowsPteHook("x86pae", resolve_transition=False)
    assert off(pte, 2, 0x401000) is None


def test_key_state_bits() -> None:
    state = bytearray(64)
    for vk in (0x41, 0x10, 0xFF):
        state[vk // 4] |= 1 << ((vk % 4) * 2)
    state[0x42 // 4] |= 2 << ((0x42 % 4) * 2)  # "was pressed" bit only: not down
    assert down_keys(bytes(state)) == [0x10, 0x41, 0xFF]
    assert is_down(bytes(state), 0x41) and not is_down(bytes(state), 0x42)


def test_scans_report_progress_to_a_callback_and_print_nothing(win7_image, capfd) -> None:  # type: ignore[no-untyped-def]
    """UI stays in the front ends: discovery reports (task, done, total) to the caller's
    ProgressReporter and writes nothing itself, with or without one."""
    from win32_util import phys_of

    from pymemflow.os.win32.kernel import Win32Kernel

    seen: list[tuple[str, int, int]] = []
    k = Win32Kernel.open(phys_of(win7_image), progress=lambda task, done, total: seen.append((task, done, total)))
    assert k.facts.arch == "x86pae"
    tasks = [t for t, _, _ in seen]
    assert "scanning for x64 PML4" in tasks  # no x64 low stub in a PAE machine: the x64 scan ran first
    for task in set(tasks):
        steps = [(d, t) for name, d, t in seen if name == task]
        assert [d for d, _ in steps] == sorted(d for d, _ in steps) and len({t for _, t in steps}) == 1
    x64 = [(d, t) for name, d, t in seen if name == "scanning for x64 PML4"]
    assert x64[-1][0] == x64[-1][1]  # the scan that found nothing ran to the end
    Win32Kernel.open(phys_of(win7_image))  # no reporter: silent
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_chain_hands_the_front_ends_reporter_to_plugins_that_take_one(win7_image, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pymemflow.plugins.chain import LinkSpec, open_links

    path = tmp_path / "win7.raw"
    win7_image.write_raw(path)
    seen: list[str] = []
    links = [LinkSpec("connector", "raw", {"target": str(path)}), LinkSpec("os", "win32")]
    with open_links(links, progress=lambda task, done, total: seen.append(task)) as ch:
        assert ch.os.facts.arch == "x86pae" and "scanning for x64 PML4" in seen
    seen.clear()
    links[1] = LinkSpec("os", "win32", {"progress": "false"})
    with open_links(links, progress=lambda task, done, total: seen.append(task)):
        assert seen == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 2**32 - 1)),
                min_size=1, max_size=20))
def test_vad_walk_on_random_trees_terminates(nodes: list[tuple[int, int, int]]) -> None:
    """Children pointing anywhere among the nodes (cycles, shared children), at the root, or at
    unmapped memory: the walk ends, visits each node at most once, and returns sane ranges."""
    from pymemflow.os.win32.vad import VadLayout, walk_vads

    lay = VadLayout(left=0, right=8, start=0x18, end=0x1C, start_high=0x20, end_high=0x21, flags=0x30,
                    protection=(7, 5), private=(20, 1), vad_type=(4, 3), win7=False, subsection=None, ptr=8)
    mem = SparseMemory()
    base = 0xFFFF800000100000
    addrs = [base + 0x100 * i for i in range(len(nodes))]
    root_holder = 0xFFFF800000000000
    mem.put_u64(root_holder, addrs[0])
    for a, (left, right, flags) in zip(addrs, nodes, strict=True):
        pick = lambda i: addrs[i] if i < len(addrs) else (0 if i % 2 else 0xFFFF8000DEAD0000)  # noqa: E731
        mem.put_u64(a + 0, pick(left))
        mem.put_u64(a + 8, pick(right))
        mem.put_u32(a + 0x18, flags & 0xFFFF)
        mem.put_u32(a + 0x1C, (flags & 0xFFFF) + (flags >> 16))
        mem.put_u32(a + 0x30, flags)
    regions, warnings = walk_vads(mem, root_holder, lay, cap=64)
    assert len(regions) <= len(nodes)
    assert all(r.end > r.start for r in regions)
    assert regions == sorted(regions, key=lambda r: r.start)


def test_changing_list_on_a_live_target() -> None:
    """A list that is being edited while we walk it (the next link changes after each read)."""

    class Moving(SparseMemory):
        def __init__(self) -> None:
            super().__init__()
            self.reads = 0

        def _read_batch(self, addrs, lengths, out):  # type: ignore[no-untyped-def]
            self.reads += 1
            if self.reads == 4:  # mid-walk, the element being visited is unlinked and re-linked in a loop
                self.put_u64(0x20300, 0x20100)
            return super()._read_batch(addrs, lengths, out)

    mem = Moving()
    nodes = [0x20000 + 0x100 * i for i in range(6)]
    ring(mem, nodes)
    w = walk_list(mem, HEAD)
    assert w.entries[:3] == nodes[:3] and len(w.entries) <= len(nodes)
    assert w.warnings and "loop" in w.warnings[0]
