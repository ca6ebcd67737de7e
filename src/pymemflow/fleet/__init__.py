"""Fleet: one CLI command over many targets (dumps, VMs, daemons) on Dask -- see docs/fleet.md.

``pymemflow.fleet(targets, command, **opts)`` is :func:`pymemflow.fleet.api.fleet`: this package
module is itself callable, so ``pymemflow.fleet`` is both the function and the package
(``pymemflow.fleet.runner`` ...). A front end: it imports the CLI's command code, nothing below
imports it.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .api import FleetRecords, command_argv, fleet
from .cluster import FleetError, FleetOptions, run_fleet
from .runner import RecordingContext, TargetResult, run_target
from .targets import Target, resolve_targets

__all__ = ["FleetError", "FleetOptions", "FleetRecords", "RecordingContext", "Target", "TargetResult",
           "command_argv", "fleet", "resolve_targets", "run_fleet", "run_target"]


class _CallableModule(types.ModuleType):
    """Lets ``pymemflow.fleet(...)`` call :func:`fleet` while the name stays this package."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return fleet(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
