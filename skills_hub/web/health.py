"""The scheduled health checks over HTTP: `GET /api/v1/health/schedule` (the liveness probe
is `/api/v1/health`, and `/livez`, `/readyz`). The view parses, calls the service, renders;
the service filters by what the caller may read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..domain import HealthCheckRow
from ..learning.schedule import Priority
from ..services import Registry
from ..services.health import HealthStatus
from .api import int_param
from .auth import request_principal


def routes(registry: Registry) -> list[Route]:
    views = Views(registry)
    return [Route("/api/v1/health/schedule", views.schedule, methods=["GET"])]


class Views:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def schedule(self, request: Request) -> JSONResponse:
        """
        summary: The scheduled health checks - queue, last check, recent changes.
        description: |
          The server re-runs the publish checks (sandboxed tests included) on stored
          versions, most important first, a budget an hour (docs/LEARNING.md, "Scheduled
          health checks"). `queue` is the head of what is due, with each version's priority
          and reasons; `changes` the newest checks that changed a verdict or deprecated or
          restored a version. Everyone sees public namespaces and those they may read; the
          hour's count and the lease holder show to the operator only.
        tags: [checks]
        parameters:
          - {name: namespace, in: query, required: false, schema: {type: string}}
          - {name: limit, in: query, required: false,
             schema: {type: integer, default: 20, minimum: 1, maximum: 200}}
        responses:
          200: {description: the schedule, schema: HealthSchedule}
          400: {description: a bad limit}
          404: {description: the namespace does not exist or is not readable}
        """
        params = request.query_params
        status = self.registry.health_status(
            request_principal(self.registry, request),
            namespace=params.get("namespace") or None,
            limit=int_param(params.get("limit"), 20, low=1, high=200))
        return JSONResponse(schedule_json(status))


def schedule_json(status: HealthStatus) -> dict[str, Any]:
    """The `HealthSchedule` body (the CLI's `health --status --json` prints the same)."""
    return {
        "enabled": status.enabled, "budget_per_hour": status.budget,
        "checks": status.fingerprint, "due": status.due,
        "queue": [queue_json(p) for p in status.queue],
        "last_check": check_json(status.last_check) if status.last_check else None,
        "changes": [check_json(c) for c in status.changes],
        "checked_last_hour": status.checked_last_hour, "holder": status.holder,
        "lease_expires_at": iso(status.lease_expires),
    }


def queue_json(item: Priority) -> dict[str, Any]:
    c = item.candidate
    return {"namespace": c.namespace, "name": c.name, "version": c.version,
            "priority": item.score, "reasons": list(item.reasons), "verdict": c.verdict,
            "last_checked_at": iso(item.last_checked)}


def check_json(row: HealthCheckRow) -> dict[str, Any]:
    return {"namespace": row.namespace, "name": row.name, "version": row.version,
            "at": iso(row.at), "kind": row.kind, "priority": row.priority,
            "reasons": [r for r in row.reasons.split("; ") if r],
            "old_verdict": row.old_verdict, "new_verdict": row.new_verdict,
            "health": row.health, "note": row.note, "ms": row.ms}


def iso(seconds: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
