"""The ``remote`` OS layer's plugin declaration (light: no NumPy)."""

from __future__ import annotations

from typing import Any

from ...remote.args import REMOTE_ARGS, client_from_args
from ...types import PluginSpec
from .layer import RemoteOs


def _open(args: dict[str, Any], _input: Any) -> Any:
    client, conn = client_from_args(args)
    return RemoteOs(client, conn)


PLUGIN = PluginSpec(
    kind="os",
    name="remote",
    description="the OS layer of a `pymemflow serve` daemon's connection, run server-side (unix:PATH or http(s)://)",
    factory=_open,
    args=REMOTE_ARGS,
)
