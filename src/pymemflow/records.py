"""Records to JSON: the one serialiser the CLI's ``--json`` and the daemon's HTTP API share.

Field names are the records' own (``ProcessInfo.as_dict()`` ...), so a field added to a record shows
up in ``pymemflow ps --json`` and in ``GET /v1/connections/NAME/processes`` at once. Stdlib only:
the remote client imports it without NumPy.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any


def jsonable(obj: Any) -> Any:
    """JSON-friendly form: bytes as hex, enums by name, dataclasses/records via ``as_dict``."""
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if isinstance(obj, Enum):
        return obj.name
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "as_dict"):
        return jsonable(obj.as_dict())
    if hasattr(obj, "item"):  # numpy scalars
        return jsonable(obj.item())
    return str(obj)


def record_list(records: Any) -> list[Any]:
    """A list of records (``ProcessInfo``, ``ModuleInfo`` ...) as JSON-ready dicts with all fields."""
    return [jsonable(r) for r in records]
