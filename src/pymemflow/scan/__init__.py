"""Searching memory for byte patterns, strings and YARA rules (``pymemflow scan``, issue 18).

Python API::

    import pymemflow
    from pymemflow.scan import Scanner, pattern_matcher, string_matchers, process_target

    with pymemflow.open("demo", os="win32") as ch:
        proc = ch.os.process("explorer.exe")
        scanner = Scanner([pattern_matcher("4D 5A 90 00"), *string_matchers("explorer")])
        for hit in scanner.scan([process_target(proc)]):
            print(hit.rule, hex(hit.address), hit.where, hit.phys)

Targets: :func:`process_target` (one process), :func:`all_process_targets` (every process),
:func:`kernel_target` (the kernel's mapped pages), :func:`phys_target` (the connector's real
ranges). docs/cli.md ("scan") describes the command.
"""

from .engine import CHUNK, Hit, Scanner, Target
from .matchers import (
    BytesMatcher,
    Matcher,
    RegexMatcher,
    YaraMatcher,
    parse_pattern,
    pattern_matcher,
    string_matchers,
    yara_matcher,
)
from .targets import all_process_targets, kernel_target, phys_target, process_target

__all__ = ["CHUNK", "BytesMatcher", "Hit", "Matcher", "RegexMatcher", "Scanner", "Target", "YaraMatcher",
           "all_process_targets", "kernel_target", "parse_pattern", "pattern_matcher", "phys_target",
           "process_target", "string_matchers", "yara_matcher"]
