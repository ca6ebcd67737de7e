"""memflow's plugin argument syntax, parsed and validated in one place.

A chain link on the command line is ``NAME[:ARGS[:MIDDLEWARE]]``::

    raw:/x.img,memmap=m.toml:cache=true,cache_size=2m
    qemu:win10,pause=open
    win32

``ARGS`` is ``target,key=value,...``: an item without ``=`` in first position is the target (the
plugin's ``target`` argument), any other item without ``=`` is a flag (``writable`` means
``writable=``, which booleans read as true). ``MIDDLEWARE`` holds the middleware keys every
connector accepts (``cache``, ``cache_size``, ``cache_time``, ``cache_page_size``, ``delay``,
``metrics``); OS layers take no middleware section. A value holding ``,`` ``=`` or ``:`` is quoted
with ``"``, ``'`` or a backtick; the quotes are removed (``raw:"/a:b.img"``). A URL's ``scheme://``
needs no quotes: ``leechcore:file:///x.img`` is the target ``file:///x.img``, and neither does a
port in a URL (``remote=rpc://host:28473``).

Unlike memflow-py, nothing is silently ignored: unknown keys, duplicate keys, missing required
arguments and values the plugin's parser rejects raise :class:`ArgumentError` naming the plugin,
the key and what is allowed. ``format_args_help`` turns the same :class:`ArgSpec` list into help
text, so the documentation cannot drift from the validation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ArgumentError
from ..records import PlainRecord
from ..types import did_you_mean, format_number
from .api import TARGET_ARG, ArgSpec, PluginSpec

QUOTES = "\"'`"


class LinkArgs(PlainRecord):
    """One parsed ``NAME:ARGS:MIDDLEWARE`` string, values still text."""

    __slots__ = ("name", "args", "middleware", "text")

    def __init__(self, name: str, args: dict[str, str] | None = None, middleware: dict[str, str] | None = None,
                 text: str = "") -> None:
        self.name, self.text = name, text
        self.args: dict[str, str] = {} if args is None else args
        self.middleware: dict[str, str] = {} if middleware is None else middleware


_PORT = re.compile(r":[0-9]+(?=[,:/]|$)")


def _url_colon(text: str, i: int, in_url: bool) -> bool:
    """The ':' at ``text[i]`` belongs to a URL: ``scheme://`` or, inside a URL, ``:PORT``."""
    return text.startswith("//", i + 1) or (in_url and _PORT.match(text, i) is not None)


def _split(text: str, sep: str, *, keep_quotes: bool = True) -> list[str]:
    """Split ``text`` at every ``sep`` outside quotes. Quotes are kept (unless told otherwise) so a
    later split still sees them; an unterminated quote is an error."""
    parts: list[str] = []
    cur: list[str] = []
    quote = ""
    in_url = False  # after a scheme:// until the next ',': a ':' before a port number stays too
    for i, ch in enumerate(text):
        if ch == ",":
            in_url = False
        if quote:
            if ch == quote:
                quote = ""
                if not keep_quotes:
                    continue
            cur.append(ch)
        elif ch in QUOTES:
            quote = ch
            if keep_quotes:
                cur.append(ch)
        elif ch == sep and not (sep == ":" and _url_colon(text, i, in_url)):
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        if ch == ":" and text.startswith("//", i + 1):
            in_url = True
    if quote:
        raise ArgumentError(f"unterminated {quote} quote in {text!r}")
    parts.append("".join(cur))
    return parts


def unquote(text: str) -> str:
    """Remove the quoting characters (the text between a pair is taken literally)."""
    return _split(text, "\0", keep_quotes=False)[0]


def split_items(text: str, *, who: str = "plugin", positional: bool = True) -> tuple[dict[str, str], list[str]]:
    """``target,key=value,flag`` -> ({"target": ..., "key": ..., "flag": ""}, keys in order).

    Empty items (``a,,b`` or a trailing comma) are skipped. A key given twice is an error.
    """
    out: dict[str, str] = {}
    order: list[str] = []
    for pos, item in enumerate(_split(text, ",")):
        if not item.strip():
            continue
        kv = _split(item, "=")
        if len(kv) == 1:
            if pos == 0 and positional:
                key, value = TARGET_ARG, unquote(item)
            else:
                key, value = unquote(item).strip(), ""
        else:
            key = unquote(kv[0]).strip()
            value = unquote("=".join(kv[1:]))
            if not key:
                raise ArgumentError(f"{who}: empty key in {item!r} (write key=value)")
        if key in out:
            raise ArgumentError(f"{who}: argument {key!r} given twice")
        out[key] = value
        order.append(key)
    return out, order


def _join_address_target(sections: list[str]) -> list[str]:
    """A target that is a daemon address keeps its colons: ``remote:unix:/s.sock,conn=a`` and
    ``remote:https://host:8750,conn=a`` have the target ``unix:/s.sock`` / ``https://host:8750``.
    Only when the text after the scheme is an address (not ``key=value`` middleware)."""
    if len(sections) < 3:
        return sections
    scheme = sections[1].strip().lower()
    nxt = sections[2]
    if scheme == "unix" and nxt and "=" not in _split(nxt, ",")[0]:
        return [sections[0], f"{sections[1]}:{nxt}", *sections[3:]]
    if scheme in ("http", "https") and nxt.startswith("//"):
        target, rest = f"{sections[1]}:{nxt}", sections[3:]
        if rest and rest[0][:1].isdigit() and "=" not in _split(rest[0], ",")[0]:
            target, rest = f"{target}:{rest[0]}", rest[1:]
        return [sections[0], target, *rest]
    return sections


def parse_link(text: str, *, kind: str = "connector") -> LinkArgs:
    """Parse ``NAME[:ARGS[:MIDDLEWARE]]`` (connectors) or ``NAME[:ARGS]`` (OS layers)."""
    if not text or not text.strip():
        raise ArgumentError(f"empty {kind} specification (expected NAME[:ARGS])")
    sections = _join_address_target(_split(text, ":"))
    name = unquote(sections[0]).strip()
    if not name:
        raise ArgumentError(f"{kind} specification {text!r} has no plugin name (expected NAME[:ARGS])")
    limit = 3 if kind == "connector" else 2
    if len(sections) > limit:
        shape = "NAME:ARGS:MIDDLEWARE" if kind == "connector" else "NAME:ARGS (OS layers take no middleware)"
        raise ArgumentError(f"{name}: too many ':' sections in {text!r} (expected {shape}; "
                            "quote values that hold ':' with \", ' or `)")
    args, _ = split_items(sections[1], who=name) if len(sections) > 1 else ({}, [])
    mw, _ = split_items(sections[2], who=name, positional=False) if len(sections) > 2 else ({}, [])
    stray = [k for k, v in mw.items() if not v and k not in middleware_keys()]
    if stray:  # `raw:/a:b.img`: the ':' belongs to the value
        raise ArgumentError(f"{name}: {sections[2]!r} after the second ':' is no middleware option; if the ':' is "
                            f"part of the value, quote it: -c '{name}:\"{sections[1]}:{sections[2]}\"' "
                            f"(middleware options: {', '.join(sorted(middleware_keys()))})")
    return LinkArgs(name=name, args=args, middleware=mw, text=text)


def _names(specs: Iterable[ArgSpec]) -> str:
    return ", ".join(a.name for a in specs) or "(none)"


def middleware_args() -> list[ArgSpec]:
    """The ``:``-section keys every connector accepts (:data:`pymemflow.mem.middleware.MIDDLEWARE_ARGS`)."""
    from ..mem.middleware import MIDDLEWARE_ARGS  # lazy: no NumPy at CLI start-up

    return list(MIDDLEWARE_ARGS)


def middleware_keys() -> set[str]:
    """Names of the ``:``-section keys (what ``Chain().connector(**kw)`` routes to the middleware)."""
    return {a.name for a in middleware_args()}


RENAMED_ARGS = {"cache": "chunk_cache"}
"""Plugin arguments that were renamed: old name -> new name (named in the error for the old one)."""


def _unknown_argument(who: str, key: str, specs: list[ArgSpec]) -> str:
    """The error for a key the plugin does not take; says where a middleware key belongs and what a
    renamed argument is called now."""
    hint = "" if key in RENAMED_ARGS or key in middleware_keys() else did_you_mean(key, [a.name for a in specs])
    msg = f"{who}: unknown argument {key!r}{hint}; valid arguments: {_names(specs)}"
    new = RENAMED_ARGS.get(key)
    if new is not None and any(a.name == new for a in specs):
        msg += f"; the decompression cache is now {new}=N ({who}:TARGET,{new}=N)"
    if key in middleware_keys():
        msg += f"; {key!r} is a middleware option: write it after a second ':' ({who}:TARGET:{key}=...)"
    return msg


def _convert(who: str, spec: ArgSpec, value: Any) -> Any:
    """Parse text (Python callers may pass values already typed: ints, bools, Paths), then check the
    spec's range and validator -- so a value that passes here cannot fail later inside the plugin."""
    try:
        return spec.check(spec.parse(value) if isinstance(value, str) else value)
    except (ValueError, TypeError, OverflowError) as e:
        raise ArgumentError(f"{who}: bad value {value!r} for {spec.name!r}: {e}") from None


def validate_against(who: str, specs: list[ArgSpec], given: Mapping[str, Any], *,
                     what: str = "argument", defaults: bool = True) -> dict[str, Any]:
    """Check ``given`` (text or already-typed values) against ``specs``: unknown keys, missing
    required ones and values their parser rejects are :class:`ArgumentError`. Returns the parsed
    values, with every spec's default filled in when ``defaults``."""
    by_name = {a.name: a for a in specs}
    for key in given:
        if key not in by_name:
            if key == TARGET_ARG and what == "argument":
                raise ArgumentError(f"{who}: takes no target ({given[key]!r} given); "
                                    f"valid {what}s: {_names(specs)}")
            if what == "argument":
                raise ArgumentError(_unknown_argument(who, key, specs))
            hint = did_you_mean(key, [a.name for a in specs])
            raise ArgumentError(f"{who}: unknown {what} {key!r}{hint}; valid {what}s: {_names(specs)}")
    out: dict[str, Any] = {}
    for spec in specs:
        if spec.name in given and given[spec.name] is not None:
            out[spec.name] = _convert(who, spec, given[spec.name])
        elif spec.required:
            raise ArgumentError(f"{who}: missing required {what} {spec.name!r} ({spec.description})")
        elif defaults:
            out[spec.name] = spec.default
    return out


def validate(spec: PluginSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """The plugin's own arguments, parsed, defaults applied -- what its factory receives."""
    return validate_against(spec.name, spec.args, given)


def validate_middleware(plugin: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The ``:``-section of a connector, parsed; only the keys given (the rest stay off)."""
    if not given:
        return {}
    parsed = validate_against(plugin, middleware_args(), given, what="middleware option", defaults=False)
    from ..mem.middleware import check_options  # lazy: no NumPy at CLI start-up

    try:
        check_options(parsed)
    except ValueError as e:
        raise ArgumentError(f"{plugin}: middleware: {e}") from None
    return parsed


def format_args_help(specs: list[ArgSpec], indent: str = "  ") -> str:
    """One line per argument: name, required/default, description."""
    if not specs:
        return f"{indent}(no arguments)"
    width = max(len(a.name) for a in specs)
    lines = []
    for a in specs:
        if a.required:
            flag = "required"
        elif isinstance(a.default, int) and not isinstance(a.default, bool) and a.minimum is not None:
            flag = f"default {format_number(a.default)}"
        elif a.default is not None:
            flag = f"default {a.default!r}"
        else:
            flag = "optional"
        allowed = a.constraint()
        flag += f"; allowed {allowed}" if allowed else ""
        lines.append(f"{indent}{a.name.ljust(width)}  {a.description} [{flag}]")
    return "\n".join(lines)


def format_plugin_help(spec: PluginSpec) -> str:
    """Usage line and arguments of a plugin (plus middleware keys for connectors)."""
    flag = "-c" if spec.kind == "connector" else "-o"
    target = spec.arg(TARGET_ARG)
    usage = f"{flag} {spec.name}"
    if target is not None:
        usage += ":TARGET" if target.required else "[:TARGET]"
        usage += ",key=value..." if len(spec.args) > 1 else ""
    elif spec.args:
        usage += ":key=value,..."
    if spec.kind == "connector":
        usage += "[:MIDDLEWARE]"
    text = [f"{spec.name} ({spec.kind}, {spec.version}, {spec.origin}): {spec.description}",
            f"  usage: {usage}", format_args_help(spec.args, "    ")]
    if spec.kind == "connector":
        text += ["  middleware (after the second ':'):", format_args_help(middleware_args(), "    ")]
    return "\n".join(text)


def format_link(name: str, args: Mapping[str, Any], middleware: Mapping[str, Any] | None = None) -> str:
    """The inverse of :func:`parse_link` for text values: quotes values that need it."""

    def q(v: Any) -> str:
        s = str(v)
        if (not s.strip() or s != s.strip() or s.startswith("//")  # after NAME: it would read as a scheme://
                or any(c in s.replace("://", "") for c in ",=:" + QUOTES)):
            for quote in QUOTES:
                if quote not in s:
                    return f"{quote}{s}{quote}"
            raise ArgumentError(f"{s!r} holds every quote character and one of ',=:'; it cannot be quoted")
        return s

    items = [q(args[TARGET_ARG])] if args.get(TARGET_ARG) is not None else []
    items += [f"{k}={q(v)}" for k, v in args.items() if k != TARGET_ARG]
    out = name + (":" + ",".join(items) if items or middleware else "")
    if middleware:
        out += ":" + ",".join(f"{k}={q(v)}" for k, v in middleware.items())
    return out
