"""A fake Pipedrive API that behaves like the documented one for what kpibot sends, on
127.0.0.1, port 0 (base URL ``<url>/api``).

- v2 (``/api/v2/deals``, ``/organizations``, ``/stages``): cursor pages, ``limit`` at most 500,
  ``additional_data.next_cursor`` (null on the last page); ``updated_since`` (RFC 3339, update
  time later than or equal to it); deals filtered by ``status`` (comma-separated; without it
  every deal but the deleted ones), sorted by ``sort_by``/``sort_direction``. Numbers are JSON
  numbers (``"value": 1200.5``), times RFC 3339 (``2026-11-30T10:00:00Z``).
- v1 (``/api/v1/users``, ``/api/v1/leads``): users in one list with ``created``/``modified``
  written ``2026-11-30 10:00:00``; leads paged by ``start``/``limit`` with
  ``additional_data.pagination`` and ``sort=update_time DESC``.
- ``/api/v1/deals/{id}/changelog``: the deal's field changes, newest first, in cursor pages as
  above (``{"field_key", "old_value", "new_value", "actor_user_id", "time", "change_source",
  "change_source_user_agent", "is_bulk_update_flag"}``, values as text, ``time`` written
  ``2026-11-30 10:00:00``); an unknown deal is HTTP 404.
- The ``x-api-token`` header must hold the token (else HTTP 401 ``unauthorized access``); every
  answer has ``{"success": …}`` and the ``x-ratelimit-*`` headers (the two-second burst window).
- Token-based rate limits: each answered request spends ``token_cost`` tokens (20, a list GET)
  of the company's daily budget, reported in ``x-daily-ratelimit-token-limit`` and
  ``x-daily-ratelimit-token-remaining``; once spent, every request gets HTTP 429 with
  ``x-daily-ratelimit-token-remaining: 0``.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

from tests.fakes.http_fake import FakeServer, Request, Response

TOKEN = "pd-test-token"


def pd_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


class FakePipedrive(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.users: list[dict[str, Any]] = []
        self.stages: list[dict[str, Any]] = []
        self.organizations: dict[int, dict[str, Any]] = {}
        self.deals: dict[int, dict[str, Any]] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self.changelogs: dict[int, list[dict[str, Any]]] = {}
        self.token_limit = 30_000 * 3  # base tokens × plan multiplier × seats
        self.token_cost = 20
        self.tokens_used = 0

    def change(self, deal: int, field_key: str, old: Any, new: Any, at: datetime) -> None:
        """Record a change of a deal's field in its changelog (the deal's own fields are the
        test's to set)."""
        entry = {
            "field_key": field_key, "old_value": None if old is None else str(old),
            "new_value": None if new is None else str(new), "actor_user_id": 1,
            "time": v1_time(at), "change_source": "app", "change_source_user_agent": None,
            "is_bulk_update_flag": False,
        }  # fmt: skip
        self.changelogs.setdefault(deal, []).insert(0, entry)

    @property
    def changelog_reads(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/changelog")]

    def handle(self, request: Request) -> Response:
        if request.headers.get("x-api-token") != TOKEN:
            refused = {"success": False, "error": "unauthorized access", "errorCode": 401,
                       "error_info": "Please check developers.pipedrive.com"}  # fmt: skip
            return Response(401, refused)
        refused = self.tokens_used + self.token_cost > self.token_limit
        if refused:
            response = Response(429, {"success": False, "error": "Daily token budget exceeded",
                                      "errorCode": 429})  # fmt: skip
        else:
            self.tokens_used += self.token_cost
            response = self._route(request)
        left = 0 if refused else self.token_limit - self.tokens_used
        response.headers.update({
            "x-ratelimit-limit": "80", "x-ratelimit-remaining": "79", "x-ratelimit-reset": "2",
            "x-daily-ratelimit-token-limit": str(self.token_limit),
            "x-daily-ratelimit-token-remaining": str(left),
        })  # fmt: skip
        return response

    def _route(self, request: Request) -> Response:
        path = request.path
        if path == "/api/v1/users":
            return Response(200, {"success": True, "data": self.users})
        if path == "/api/v1/leads":
            return self._leads(request)
        if path == "/api/v2/stages":
            return self._cursor(request, self.stages)
        if path == "/api/v2/organizations":
            return self._cursor(request, self._since(request, list(self.organizations.values())))
        changelog = re.fullmatch(r"/api/v1/deals/(\d+)/changelog", path)
        if changelog:
            deal = int(changelog[1])
            if deal not in self.deals:
                return Response(404, {"success": False, "error": "Deal not found"})
            return self._cursor(request, self.changelogs.get(deal, []))
        if path == "/api/v2/deals":
            wanted = (request.param("status") or "open,won,lost").split(",")
            rows = [d for d in self.deals.values() if d["status"] in wanted]
            rows = self._since(request, rows)
            if request.param("sort_by") == "update_time":
                rows.sort(key=lambda d: d["update_time"],
                          reverse=request.param("sort_direction") == "desc")  # fmt: skip
            return self._cursor(request, rows)
        return Response(404, {"success": False, "error": f"unknown path {path}"})

    @staticmethod
    def _since(request: Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        since = request.param("updated_since")
        if since is None:
            return rows
        moment = datetime.fromisoformat(since.replace("Z", "+00:00"))

        def updated(row: dict[str, Any]) -> datetime:
            return datetime.fromisoformat(row["update_time"].replace("Z", "+00:00"))

        return [r for r in rows if updated(r) >= moment]

    @staticmethod
    def _cursor(request: Request, rows: list[dict[str, Any]]) -> Response:
        limit = int(request.param("limit", "100") or 100)
        if limit > 500:
            return Response(400, {"success": False, "error": "limit must be between 1 and 500"})
        cursor = request.param("cursor")
        start = json.loads(base64.b64decode(cursor))["offset"] if cursor else 0
        end = start + limit
        following = None
        if end < len(rows):
            following = base64.b64encode(json.dumps({"offset": end}).encode()).decode()
        return Response(200, {"success": True, "data": rows[start:end],
                              "additional_data": {"next_cursor": following}})  # fmt: skip

    def _leads(self, request: Request) -> Response:
        limit = int(request.param("limit", "100") or 100)
        start = int(request.param("start", "0") or 0)
        rows = sorted(self.leads.values(), key=lambda r: r["update_time"],
                      reverse=request.param("sort") == "update_time DESC")  # fmt: skip
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        pagination = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        return Response(200, {"success": True, "data": page,
                              "additional_data": {"pagination": pagination}})  # fmt: skip
