"""Core commands: ``plugins``, ``targets``, ``info``, ``phys-read``."""

from __future__ import annotations

from typing import Any

from ...errors import ArgumentError
from ...plugins.api import PluginSpec
from ...plugins.args import format_plugin_help
from ..context import CommandContext
from ..readout import add_read_arguments, read_out


def register(sub: Any) -> None:
    p = sub.add_parser("plugins", help="list connectors and OS layers with their arguments")
    p.add_argument("name", nargs="?", help="show only this plugin, with its full argument help")
    p.add_argument("--kind", choices=["connector", "os"], help="only connectors or only OS layers")
    p.set_defaults(handler=run_plugins)

    p = sub.add_parser("targets", help="what a connector can open (VMs, devices, ...)")
    p.add_argument("-c", "--connector", dest="plugin", metavar="NAME",
                   help="the connector (default: the chain's last connector)")
    p.set_defaults(handler=run_targets)

    p = sub.add_parser("info", help="metadata of the chain: connector metadata and hints, OS facts")
    p.set_defaults(handler=run_info)

    p = sub.add_parser("phys-read", help="read physical memory: hexdump, or raw bytes with --out")
    add_read_arguments(p, "physical")
    p.set_defaults(handler=run_phys_read)


def _args_dict(spec: PluginSpec) -> list[dict[str, Any]]:
    return [{"name": a.name, "description": a.description, "required": a.required,
             "default": a.default} for a in spec.args]


def run_plugins(ctx: CommandContext) -> int:
    inv = ctx.inventory
    specs = inv.specs(ctx.args.kind)
    if ctx.args.name:
        specs = [s for s in specs if s.name == ctx.args.name]
        if not specs:
            raise ArgumentError(f"no plugin named {ctx.args.name!r}; available: {', '.join(s.name for s in inv.specs())}")
    records = [{"kind": s.kind, "name": s.name, "version": s.version, "description": s.description,
                "origin": s.origin, "accepts_input": s.accepts_input, "requires_input": s.requires_input,
                "has_targets": s.targets is not None, "args": _args_dict(s)} for s in specs]
    if ctx.machine and ctx.format != "json":  # --jsonl / --csv: one record per plugin
        ctx.emit(records)
        return 0
    if ctx.machine:
        ctx.write_json({
            "plugins": records,
            "shadowed": [{"kind": lo.kind, "name": lo.name, "origin": lo.origin, "winner": w.origin}
                         for lo, w in inv.shadowed],
            "problems": list(inv.problems),
        })
        return 0
    if ctx.args.name:
        ctx.out.write("\n\n".join(format_plugin_help(s) for s in specs) + "\n")
        return 0
    for kind, title in (("connector", "connectors (-c NAME:ARGS)"), ("os", "OS layers (-o NAME:ARGS)")):
        rows = [{"name": s.name, "version": s.version, "args": ",".join(
            a.name + ("*" if a.required else "") for a in s.args), "description": s.description}
            for s in specs if s.kind == kind]
        if rows:
            ctx.emit(rows, ["name", "version", "args", "description"], title=title)
            ctx.out.write("\n")
    ctx.out.write("* = required; `pymemflow plugins NAME` shows a plugin's arguments\n")
    for lo, w in inv.shadowed:
        ctx.out.write(f"note: {lo.kind} {lo.name!r} from {lo.origin} is shadowed by {w.origin}\n")
    if inv.problems and ctx.verbose:
        for msg in inv.problems:
            ctx.out.write(f"skipped: {msg}\n")
    return 0


def run_targets(ctx: CommandContext) -> int:
    name = ctx.args.plugin
    if name is None:
        conns = [lk for lk in ctx.links if lk.kind == "connector"]
        if not conns:
            raise ArgumentError("targets: name the connector with `targets -c NAME`")
        name = conns[-1].name
    spec = ctx.inventory.get("connector", name)
    if spec.targets is None:
        raise ArgumentError(f"{name}: this connector cannot list targets")
    rows = [{"name": t.name, "description": t.description, **t.extra} for t in spec.targets()]
    ctx.emit(rows, ["name", "description"])
    return 0


def run_info(ctx: CommandContext) -> int:
    chain = ctx.chain
    from ...mem.fast import READ_PATH  # lazy: only info reports it

    out: dict[str, Any] = {"chain": chain.describe(), "read_path": READ_PATH}
    if chain.connector is not None:
        out["connector"] = chain.connector.info()
    if chain.os is not None:
        out["os"] = chain.os.info()
    ctx.emit_obj(out)
    return 0


def run_phys_read(ctx: CommandContext) -> int:
    a = ctx.args
    return read_out(ctx, ctx.connector(), a.addr, a.length, a.out, a.force)
