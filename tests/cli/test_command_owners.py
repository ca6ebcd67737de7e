"""``COMMAND_OWNERS`` (which module registers which command) matches the modules, and a run loads only
its command's module and builds only its command's parser (the daemon's thin clients start without
NumPy and without the other commands' options)."""

from __future__ import annotations

import argparse
import importlib

from pymemflow.cli.commands import COMMAND_MODULES, COMMAND_OWNERS
from pymemflow.cli.main import build_parser


def test_owners_match_what_modules_register() -> None:
    found: dict[str, str] = {}
    for name in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(name if "." in name else f"pymemflow.cli.commands.{name}").register(sub)
        found.update(dict.fromkeys(sub.choices, name))
    assert found == COMMAND_OWNERS


def _commands(p: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_parser_for_a_command_line_loads_its_module_only() -> None:
    assert _commands(build_parser(["-o", "remote:unix:/s,conn=a", "ps", "--json"])) == {"ps"}
    assert _commands(build_parser(["modules", "-p", "4"])) == {"modules"}  # same module, other command
    assert _commands(build_parser(["-c", "ps", "-v", "translate", "0x1000"])) == {"translate"}  # -c's value skipped
    every = set(COMMAND_OWNERS)
    assert _commands(build_parser()) == every
    assert _commands(build_parser(["--help"])) == every
    assert _commands(build_parser(["-c", "demo", "no-such-command"])) == every
    assert _commands(build_parser(["-c", "demo"])) == every
