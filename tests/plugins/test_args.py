"""memflow's argument syntax: splitting, quoting, validation against ArgSpecs, help text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymemflow.errors import ArgumentError
from pymemflow.mem.middleware import MIDDLEWARE_ARGS, PageCache
from pymemflow.plugins.api import ArgSpec, PluginSpec, parse_bool, parse_int
from pymemflow.plugins.args import (
    format_args_help,
    format_link,
    format_plugin_help,
    parse_link,
    split_items,
    validate,
    validate_middleware,
)
from pymemflow.plugins.registry import default_inventory

SPEC = PluginSpec(
    "connector", "demoplug", "test", lambda a, i: None,
    args=[ArgSpec("target", "the file", required=True),
          ArgSpec("offset", "skip bytes", default=0, parse=parse_int),
          ArgSpec("writable", "allow writes", default=False, parse=parse_bool)],
)


def test_name_target_keys_and_middleware() -> None:
    la = parse_link("raw:/x.img,memmap=m.toml:cache=true,cache_size=2m")
    assert la.name == "raw"
    assert la.args == {"target": "/x.img", "memmap": "m.toml"}
    assert la.middleware == {"cache": "true", "cache_size": "2m"}


def test_name_only_and_empty_sections() -> None:
    assert parse_link("win32", kind="os").args == {}
    la = parse_link("dummy::cache=true")
    assert la.args == {} and la.middleware == {"cache": "true"}
    assert parse_link("dummy:size=1m,,").args == {"size": "1m"}


def test_bare_items_after_the_first_are_flags() -> None:
    assert parse_link("raw:/x,writable").args == {"target": "/x", "writable": ""}
    assert parse_link("dummy::cache").middleware == {"cache": ""}
    assert validate(SPEC, {"target": "/x", "writable": ""})["writable"] is True


@pytest.mark.parametrize("q", ['"', "'", "`"])
def test_quotes_protect_separators(q: str) -> None:
    la = parse_link(f"raw:{q}/a:b,c=d.img{q},memmap={q}m,1:2=3.toml{q}:delay={q}1ms{q}")
    assert la.args == {"target": "/a:b,c=d.img", "memmap": "m,1:2=3.toml"}
    assert la.middleware == {"delay": "1ms"}


def test_quotes_inside_a_value_and_other_quote_chars_literal() -> None:
    assert parse_link("raw:/x,memmap=pre'a,b'post").args["memmap"] == "prea,bpost"
    assert parse_link("""raw:"it's:here" """.strip()).args["target"] == "it's:here"
    assert parse_link("raw:`say \"hi\", ok`").args["target"] == 'say "hi", ok'


@pytest.mark.parametrize("text", ['raw:"/x.img', "raw:/x,memmap='m", "raw:`"])
def test_unterminated_quote(text: str) -> None:
    with pytest.raises(ArgumentError, match="unterminated"):
        parse_link(text)


def test_too_many_sections() -> None:
    with pytest.raises(ArgumentError, match=r"raw: too many ':' sections.*quote"):
        parse_link("raw:/a:b:cache=true:x")
    with pytest.raises(ArgumentError, match="OS layers take no middleware"):
        parse_link("win32:a:b", kind="os")


@pytest.mark.parametrize("text, msg", [
    ("", "empty connector"),
    ("   ", "empty connector"),
    (":x", "no plugin name"),
    ("raw:/x,offset=1,offset=2", "'offset' given twice"),
    ("raw:/x,=5", "empty key"),
])
def test_malformed(text: str, msg: str) -> None:
    with pytest.raises(ArgumentError, match=msg):
        parse_link(text)


def test_split_items_order() -> None:
    args, order = split_items("t,b=1,a=2")
    assert order == ["target", "b", "a"] and args["a"] == "2"


def test_validate_applies_defaults_and_parses() -> None:
    assert validate(SPEC, {"target": "/x", "offset": "0x1k"}) == {"target": "/x", "offset": 0x400, "writable": False}


def test_python_values_pass_through() -> None:
    assert validate(SPEC, {"target": "/x", "offset": 7, "writable": True})["offset"] == 7


def test_unknown_key_names_plugin_key_and_valid_keys() -> None:
    with pytest.raises(ArgumentError) as e:
        validate(SPEC, {"target": "/x", "ofset": "1"})
    assert str(e.value) == "demoplug: unknown argument 'ofset' (did you mean 'offset'?); valid arguments: target, offset, writable"


def test_missing_required() -> None:
    with pytest.raises(ArgumentError, match=r"demoplug: missing required argument 'target' \(the file\)"):
        validate(SPEC, {"offset": "1"})


def test_bad_value_says_what_is_allowed() -> None:
    with pytest.raises(ArgumentError, match=r"demoplug: bad value 'lots' for 'offset':.*not a number.*0x hex"):
        validate(SPEC, {"target": "/x", "offset": "lots"})
    with pytest.raises(ArgumentError, match=r"bad value 'maybe' for 'writable'.*true/false"):
        validate(SPEC, {"target": "/x", "writable": "maybe"})


def test_target_given_to_a_plugin_without_one() -> None:
    spec = PluginSpec("os", "noargs", "", lambda a, i: None, args=[ArgSpec("x", "x")])
    with pytest.raises(ArgumentError, match=r"noargs: takes no target \('foo' given\); valid arguments: x"):
        validate(spec, {"target": "foo"})


def test_middleware_parsed_only_given_keys() -> None:
    mw = validate_middleware("raw", {"cache": "true", "cache_size": "4m", "delay": "1ms"})
    assert set(mw) == {"cache", "cache_size", "delay"}
    assert mw["cache_size"] == 4 << 20 and mw["delay"] == pytest.approx(1e-3)
    assert validate_middleware("raw", {}) == {}


def test_middleware_errors_list_valid_keys() -> None:
    with pytest.raises(ArgumentError) as e:
        validate_middleware("raw", {"cach": "true"})
    valid = ", ".join(a.name for a in MIDDLEWARE_ARGS)
    assert str(e.value) == f"raw: unknown middleware option 'cach' (did you mean 'cache'?); valid middleware options: {valid}"
    with pytest.raises(ArgumentError, match=r"raw: bad value '3k' for 'cache_page_size'.*power-of-two"):
        validate_middleware("raw", {"cache_page_size": "3k"})


def test_help_text_from_the_same_specs() -> None:
    text = format_args_help(SPEC.args)
    for a in SPEC.args:
        assert a.name in text and a.description in text
    assert "[required]" in text and "[default 0]" in text
    raw_help = format_plugin_help(default_inventory().get("connector", "raw"))
    assert "usage: -c raw:TARGET" in raw_help
    for a in MIDDLEWARE_ARGS:
        assert a.name in raw_help


def test_builtin_raw_middleware_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pymemflow import chain

    f = tmp_path / "m.img"
    f.write_bytes(bytes(range(256)) * 16)
    with chain(["-c", f"raw:'{f}':cache=true,cache_size=64k"]) as ch:
        assert isinstance(ch.connector, PageCache)
        assert ch.connector.read(0x10, 4) == bytes([0x10, 0x11, 0x12, 0x13])


_text = st.text(alphabet="ab/.:,=\"'` xy1", min_size=1, max_size=12)  # 1: URL ports


@settings(max_examples=60, deadline=None)
@given(target=_text, value=_text, mw=_text)
def test_format_link_roundtrip(target: str, value: str, mw: str) -> None:
    """Whatever the values hold, quoting makes parse_link give them back (or refuses clearly)."""
    try:
        text = format_link("raw", {"target": target, "memmap": value}, {"delay": mw})
    except ArgumentError:
        return  # a value holding all three quote characters and a separator cannot be quoted
    la = parse_link(text)
    assert la.args == {"target": target, "memmap": value}
    assert la.middleware == {"delay": mw}
