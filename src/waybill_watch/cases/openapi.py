"""The OpenAPI 3.1 document of the cases REST API (``GET /api/openapi.json``).

Paths are written here; request and response bodies come from the pydantic models, so the
document cannot drift from what the handlers validate and return.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from waybill_watch import __version__
from waybill_watch.cases.model import Case, CasePage, CloseRequest, NoteRequest, StepUpdate

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _ok(name: str | None, description: str = "OK") -> dict[str, Any]:
    if name is None:
        return {"description": description, "content": {"application/json": {}}}
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


_ERRORS = {
    "401": {"description": "missing or invalid bearer token"},
    "403": {"description": "the token's role may not do this"},
    "404": {"description": "no such case (or not the token's merchant's)"},
    "422": {"description": "invalid input; `field` names it"},
}


def _param(name: str, where: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    _, schemas = models_json_schema(
        [
            (Case, "serialization"),
            (CasePage, "serialization"),
            (StepUpdate, "validation"),
            (CloseRequest, "validation"),
            (NoteRequest, "validation"),
        ],
        ref_template=_REF,
    )
    case_id = _param("case_id", "path", "Case id")
    list_params = [
        _param("status", "query", "open or closed", enum=["open", "closed"]),
        _param("type", "query", "anomaly type attached to the case"),
        _param("courier", "query", "courier code"),
        _param("merchant", "query", "merchant (a merchant-scoped token sees only its own)"),
        _param("overdue", "query", "only cases with a pending step past due", type="boolean"),
        _param("limit", "query", "page size", type="integer", minimum=1, maximum=500),
        _param("cursor", "query", "next_cursor of the previous page"),
    ]
    paths = {
        "/api/cases": {
            "get": {
                "summary": "Cases in queue order (next due first)",
                "parameters": list_params,
                "responses": {"200": _ok("CasePage"), **_ERRORS},
            }
        },
        "/api/cases/{case_id}": {
            "get": {
                "summary": "One case",
                "parameters": [case_id],
                "responses": {"200": _ok("Case"), **_ERRORS},
            }
        },
        "/api/cases/{case_id}/steps/{step}": {
            "post": {
                "summary": "Mark a pending step done or skipped (operator)",
                "parameters": [case_id, _param("step", "path", "step code")],
                "requestBody": _body("StepUpdate"),
                "responses": {
                    "200": _ok("Case"),
                    "409": {"description": "step not pending"},
                    **_ERRORS,
                },
            }
        },
        "/api/cases/{case_id}/close": {
            "post": {
                "summary": "Close the case with an outcome (operator)",
                "parameters": [case_id],
                "requestBody": _body("CloseRequest"),
                "responses": {
                    "200": _ok("Case"),
                    "409": {"description": "already closed"},
                    **_ERRORS,
                },
            }
        },
        "/api/cases/{case_id}/notes": {
            "post": {
                "summary": "Add a note (operator)",
                "parameters": [case_id],
                "requestBody": _body("NoteRequest"),
                "responses": {"201": _ok("Case"), **_ERRORS},
            }
        },
        "/api/cases/{case_id}/dossier": {
            "get": {
                "summary": "The evidence chain: JSON, or a printable page with Accept: text/html",
                "parameters": [case_id],
                "responses": {
                    "200": {
                        "description": "the dossier",
                        "content": {"application/json": {}, "text/html": {}},
                    },
                    **_ERRORS,
                },
            }
        },
        "/api/review": {
            "get": {
                "summary": "Counts and rates by courier, lane, site and type",
                "parameters": [
                    _param(
                        "since", "query", "RFC 3339; default until - 30 days", format="date-time"
                    ),
                    _param("until", "query", "RFC 3339; default now", format="date-time"),
                ],
                "responses": {"200": _ok(None), **_ERRORS},
            }
        },
        "/healthz": {
            "get": {"summary": "Process up", "security": [], "responses": {"200": _ok(None)}}
        },
        "/readyz": {
            "get": {
                "summary": "Database and Kafka reachable",
                "security": [],
                "responses": {"200": _ok(None), "503": {"description": "not ready"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {"200": {"description": "text format"}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "waybill-watch cases API",
            "version": __version__,
            "description": "Contract §9. Tokens: SHA-256 digests in WAYBILL_WATCH_API_TOKENS_FILE.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
