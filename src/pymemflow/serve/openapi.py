"""The OpenAPI 3.1 document of the ``/v1`` API, built from the route table (one source of truth)."""

from __future__ import annotations

import re
from importlib import metadata
from typing import TYPE_CHECKING, Any

from ..remote.protocol import __doc__ as WIRE_DOC

if TYPE_CHECKING:
    from .app import Route

try:
    VERSION = metadata.version("pymemflow")
except metadata.PackageNotFoundError:  # running from a source tree
    VERSION = "0+unknown"

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["status", "type", "message"], "properties": {
        "status": {"type": "integer"}, "type": {"type": "string"}, "message": {"type": "string"},
        "failures": {"type": "array", "items": {"type": "array"}}}}}}


def _op_id(method: str, path: str) -> str:
    words = re.sub(r"[{}]", "", path.removeprefix("/v1")).replace("-", "_").strip("/").split("/")
    return method.lower() + "_" + "_".join(w for w in words if w) if words != [""] else method.lower() + "_root"


def document(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {"operationId": _op_id(r.method, r.path), "summary": r.summary, "parameters": [
            {"name": p.name, "in": p.where, "required": p.required or p.where == "path", "description": p.description,
             "schema": ({"type": "string", "pattern": r"^(0[xX][0-9a-fA-F_]+|[0-9][0-9_]*)$"}
                        if p.type == "integer" else {"type": p.type})} for p in r.params]}
        if r.body == "json":
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": r.body_schema}}}
        elif r.body == "octet":
            op["requestBody"] = {"required": True, "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}}
        elif r.body == "pieces":
            op["requestBody"] = {"required": True, "description": "pieces to read (see the batch format below)",
                                 "content": {
                                     "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                                     "application/json": {"schema": {
                                         "type": "object", "required": ["pieces"], "properties": {"pieces": {
                                             "type": "array", "items": {"type": "array", "minItems": 2,
                                                                        "maxItems": 2,
                                                                        "items": {"type": "integer",
                                                                                  "minimum": 0}}}}}}}}
        ok: dict[str, Any]
        if r.response == "none":
            ok = {"description": "done"}
        elif r.response in ("octet", "batch"):
            ok = {"description": "bytes" if r.response == "octet" else "batch response (binary, see description)",
                  "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
        else:
            ok = {"description": "JSON", "content": {"application/json": {"schema": {}}}}
        err = {"description": "error (JSON naming what was wrong)",
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        code = "201" if r.method == "POST" and r.body == "json" else ("204" if r.response == "none" else "200")
        op["responses"] = {code: ok, "4XX": err, "5XX": err}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "pymemflow daemon", "version": VERSION,
                 "description": "Connections (chains opened once), processes, modules, memory. "
                                "Field names are the CLI's --json names.\n\n" + (WIRE_DOC or "")},
        "paths": paths,
        "components": {"schemas": {"Error": ERROR},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
    }
