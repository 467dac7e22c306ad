"""The OpenAPI document: each view's docstring YAML (Starlette's generator) completed with
what tools need and a docstring should not repeat: every path parameter, typed from the
route's converter, the JSON error body of every 4xx/5xx answer of the JSON APIs, and the
named schemas of the JSON bodies (components/schemas), generated from the pydantic models
of web/models.py.

A docstring names a body's schema with `schema:` in a response or the request body, which
becomes `content: {application/json: {schema: ...}}`: a name (`schema: Skill`) is a
reference to the model of that name (an unknown name is an error when the document is
built), a mapping an inline schema. Docstrings quote a description that holds a comma (YAML
flow mappings split at commas).

The document is OpenAPI 3.1.0, not 3.0.3: 3.1's schemas are JSON Schema (2020-12), which is
what pydantic writes, so the models' schemas go in unchanged; 3.0 would need every
`anyOf: [X, {type: null}]` rewritten as `nullable: true` (and a `$ref` wrapped in `allOf`
to carry it), a transform of our own to keep right. Everything that reads the document takes
3.1: the vendored Swagger UI 5, schemathesis 4 (tests/test_fuzz.py, with 2020-12
validation of answers), and its OpenAPI 3.1 meta-schema in tests/test_openapi.py, which
also checks every component against the 2020-12 meta-schema (the 3.1 meta-schema leaves
schemas unchecked)."""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, models_json_schema
from pydantic_core import core_schema
from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator

from .models import COMPONENTS

Schema = dict[str, Any]
REF_TEMPLATE = "#/components/schemas/{model}"


def ref(name: str) -> Schema:
    return {"$ref": REF_TEMPLATE.format(model=name)}


class _Generator(GenerateJsonSchema):
    """pydantic's JSON Schema as the document wants it: no title on each property (its
    name says it) and no defaults (an answer has none; a request's are the view's)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> Schema:
        return self.generate_inner(schema["schema"])


@functools.cache
def component_schemas() -> dict[str, Schema]:
    """Every model of web/models.py as a JSON Schema, by its class name."""
    _, top = models_json_schema([(model, "validation") for model in COMPONENTS.values()],
                                ref_template=REF_TEMPLATE, schema_generator=_Generator)
    schemas: dict[str, Schema] = top.get("$defs", {})
    if set(schemas) != set(COMPONENTS):  # pydantic renames a model only on a clash
        raise RuntimeError(f"component names differ from the models: {sorted(schemas)}")
    return schemas


def _component(name: str, label: str) -> Schema:
    if name not in COMPONENTS:
        raise KeyError(f"{label}: no component schema {name!r} (a model in web/models.py)")
    return ref(name)


ERROR_REF = ref("Error")
JSON_PREFIXES = ("/api/",)
CONVERTOR_TYPES = {"IntegerConvertor": {"type": "integer"},
                   "FloatConvertor": {"type": "number"}}


def _expand_request_body(operation: dict[str, Any], label: str) -> None:
    """A request body's `schema:` shorthand (a component's name or an inline schema) as its
    JSON content."""
    body = operation.get("requestBody")
    if isinstance(body, dict) and "schema" in body:
        schema = body.pop("schema")
        if isinstance(schema, str):
            schema = _component(schema, label)
        body.setdefault("required", True)
        body["content"] = {"application/json": {"schema": schema}}


METHOD_ORDER = {m: i for i, m in enumerate(("get", "head", "post", "put", "patch", "delete"))}


class OpenApi(SchemaGenerator):
    """Starlette's docstring generator, completed (see the module docstring)."""

    def get_schema(self, routes: list[BaseRoute]) -> dict[str, Any]:
        schema = super().get_schema(routes)
        types = _path_parameter_types(routes)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(component_schemas())
        # Starlette keeps a route's methods in a set: order them, so that the document (and
        # everything generated from it, such as the fuzz tests' ids) is the same in every
        # process whatever its hash seed.
        paths = schema.get("paths", {})
        for path, operations in paths.items():
            paths[path] = dict(sorted(operations.items(), key=lambda m: METHOD_ORDER.get(
                m[0], len(METHOD_ORDER))))
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                _add_path_parameters(operation, path, types.get(path, {}))
                _expand_responses(operation, f"{method.upper()} {path}")
                _expand_request_body(operation, f"{method.upper()} {path}")
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


def _expand_responses(operation: dict[str, Any], label: str) -> None:
    """Each response's `schema:` shorthand as its JSON content (see the module docstring),
    and a description a flow mapping split at an unquoted comma joined again."""
    for response in operation.get("responses", {}).values():
        if not isinstance(response, dict):
            continue
        if "schema" not in response:
            continue
        body = response.pop("schema")
        if isinstance(body, str):
            body = _component(body, label)
        response.setdefault("content", {})["application/json"] = {"schema": body}
