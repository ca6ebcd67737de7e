"""How a plugin declares itself. Built-in and third-party plugins use exactly this.

A plugin module defines ``PLUGIN = PluginSpec(...)`` (or ``PLUGINS = [...]``). Third-party packages
point an entry point in group ``pymemflow.connectors`` or ``pymemflow.os`` at a ``PluginSpec``
(or at a module holding ``PLUGIN``); plugin folders hold ``.py`` files that define ``PLUGIN``.

The names are defined in :mod:`pymemflow.types` (the bottom layer, so connectors, OS layers and
middleware can declare arguments without importing the plugin machinery above them); this module is
the stable import path for plugin authors. See docs/plugins.md and docs/architecture.md.
"""

from __future__ import annotations

from ..types import (
    PROGRESS_ARG,
    TARGET_ARG,
    ArgSpec,
    PluginKind,
    PluginSpec,
    ProgressReporter,
    TargetInfo,
    choice,
    parse_bool,
    parse_duration,
    parse_int,
    parse_size,
)

__all__ = [
    "PROGRESS_ARG",
    "TARGET_ARG",
    "ArgSpec",
    "PluginKind",
    "PluginSpec",
    "ProgressReporter",
    "TargetInfo",
    "choice",
    "parse_bool",
    "parse_duration",
    "parse_int",
    "parse_size",
]
