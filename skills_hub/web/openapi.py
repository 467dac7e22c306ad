"""The OpenAPI document: each view's docstring YAML (Starlette's generator) completed with
what tools need and a docstring should not repeat: every path parameter, typed from the
route's converter, and the JSON error body of every 4xx/5xx answer of the JSON APIs."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "description": "stable, machine-readable"},
        "message": {"type": "string", "description": "what is wrong and how to fix it"},
        "hint": {"type": "string"},
        "problems": {"type": "array", "items": {
            "type": "object",
            "properties": {"field": {"type": "string"}, "message": {"type": "string"},
                           "hint": {"type": "string"}, "severity": {"type": "string"}}}},
    },
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}
JSON_PREFIXES = ("/api/",)
CONVERTOR_TYPES = {"IntegerConvertor": {"type": "integer"},
                   "FloatConvertor": {"type": "number"}}


class OpenApi(SchemaGenerator):
    """Starlette's docstring generator, completed (see the module docstring)."""

    def get_schema(self, routes: list[BaseRoute]) -> dict[str, Any]:
        schema = super().get_schema(routes)
        types = _path_parameter_types(routes)
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                _add_path_parameters(operation, path, types.get(path, {}))
                if path.startswith(JSON_PREFIXES):
                    _add_error_bodies(operation)
        return schema


def _path_parameter_types(routes: list[BaseRoute]) -> dict[str, dict[str, dict[str, str]]]:
    """OpenAPI path -> parameter name -> JSON schema, from each route's converters."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = re.sub(r":\w+}", "}", route.path)
        out[path] = {name: CONVERTOR_TYPES.get(type(convertor).__name__, {"type": "string"})
                     for name, convertor in route.param_convertors.items()}
    return out


def _add_path_parameters(operation: dict[str, Any], path: str,
                         types: dict[str, dict[str, str]]) -> None:
    declared = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "path"}
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    missing = [{"name": name, "in": "path", "required": True,
                "schema": types.get(name, {"type": "string"})}
               for name in names if name not in declared]
    if missing:
        operation["parameters"] = [*operation.get("parameters", []), *missing]


def _add_error_bodies(operation: dict[str, Any]) -> None:
    for status, response in operation.get("responses", {}).items():
        if str(status)[0] in "45" and isinstance(response, dict) \
                and "content" not in response:
            response["content"] = {"application/json": {"schema": ERROR_REF}}
