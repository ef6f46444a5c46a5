"""The OpenAPI 3.1 document of the admin API, generated from the same operation table that the app
routes, and from the msgspec Structs of admin.wire: the document cannot drift from the code."""

from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec

from admin.wire import Error, Uuid

_ERRORS = {
    400: "malformed request",
    401: "missing or wrong bearer token",
    404: "not found",
    422: "invalid request",
    503: "database or broker unavailable",
}
# Answered only by the operations that list them (`Operation.errors`).
_OPTIONAL_ERRORS = {
    409: "in conflict with work in progress",
    413: "request body too large",
    415: "unsupported media type",
}


class Operation(NamedTuple):
    method: str
    path: str  # OpenAPI form: `{id}` path parameters are subscription ids
    summary: str
    status: int  # the success status
    # None: no body. A tuple: one of these shapes, told apart by the query (see GET /v1/exams).
    response: type | tuple[type, ...] | None
    body: type | None = None
    query: type | None = None
    public: bool = False
    # Path parameters other than `{id}` (a subscription id): name -> type (a msgspec-schemable type).
    path_params: tuple[tuple[str, Any], ...] = ()
    body_media_type: str = "application/json"
    errors: tuple[int, ...] = ()  # statuses of _OPTIONAL_ERRORS this operation answers
    # An error status whose body says more than `Error` (which it extends): status -> type.
    error_bodies: tuple[tuple[int, Any], ...] = ()


def document(operations: Sequence[Operation]) -> dict[str, Any]:
    types: list[Any] = [Error, Uuid]
    for op in operations:
        responses = op.response if isinstance(op.response, tuple) else (op.response,)
        types.extend(t for t in (*responses, op.body, op.query) if t is not None)
        types.extend(kind for _, kind in op.path_params)
        types.extend(kind for _, kind in op.error_bodies)
    refs, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    ref_of = dict(zip(map(id, types), refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method.lower()}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '').replace('-', '_')}",
            "responses": _responses(op, ref_of),
        }
        parameters = []
        if "{id}" in op.path:
            parameters.append({"name": "id", "in": "path", "required": True, "schema": ref_of[id(Uuid)]})
        for name, kind in op.path_params:
            parameters.append({"name": name, "in": "path", "required": True, "schema": ref_of[id(kind)]})
        if op.query is not None:
            parameters.extend(_query_parameters(components[op.query.__name__], components))
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {op.body_media_type: {"schema": ref_of[id(op.body)]}},
            }
        if op.public:
            item["security"] = []
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "resultbus admin API",
            "version": "1",
            "description": "Subscriptions to normalized results (delivered as Standard Webhooks), and the "
            "look-ups an operator needs. Every call but /healthz and /openapi.json needs "
            "`Authorization: Bearer <RESULTBUS_ADMIN_TOKEN>`.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _responses(op: Operation, ref_of: dict[int, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "success"}
    if isinstance(op.response, tuple):
        shapes = [ref_of[id(t)] for t in op.response]
        success["content"] = {"application/json": {"schema": {"oneOf": shapes}}}
    elif op.response is not None:
        success["content"] = {"application/json": {"schema": ref_of[id(op.response)]}}
    responses: dict[str, Any] = {str(op.status): success}
    error = {"application/json": {"schema": ref_of[id(Error)]}}
    for status, text in _ERRORS.items():
        if op.public and status in (401, 404, 422, 400):
            continue
        responses[str(status)] = {"description": text, "content": error}
    for status in op.errors:
        responses[str(status)] = {"description": _OPTIONAL_ERRORS[status], "content": error}
    for status, kind in op.error_bodies:
        responses[str(status)]["content"] = {"application/json": {"schema": ref_of[id(kind)]}}
    return responses


def _query_parameters(schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        parameters.append(
            {"name": name, "in": "query", "required": name in required, "schema": _without_null(prop)}
        )
    return parameters


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    # A query parameter is absent or a string, never null: `X | None` becomes just X.
    alternatives = prop.get("anyOf")
    if alternatives:
        rest = [a for a in alternatives if a.get("type") != "null"]
        if len(rest) == 1:
            extra = {k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}
            return {**rest[0], **extra}
    return prop
