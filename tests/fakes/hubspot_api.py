"""A fake HubSpot CRM API (v3) that behaves like the documented one for what kpibot sends, on
127.0.0.1, port 0.

- ``GET /crm/v3/owners/``: owners with ``teams``, paged by ``after``.
- ``GET /crm/v3/pipelines/deals``: pipelines and their stages, each with ``metadata``
  ``{"isClosed": "true", "probability": "1.0"}`` (strings, as HubSpot writes them).
- ``POST /crm/v3/objects/<type>/search``: ``filterGroups`` (``GTE``/``GT`` on
  ``hs_lastmodifieddate`` in epoch milliseconds and on ``hs_object_id``), ``sorts`` on
  ``hs_object_id``, ``properties``, ``limit`` (at most 200) and ``after``. Property values are
  strings or null (``"amount": "1200.5"``); ``hs_object_id``, ``createdate`` and
  ``hs_lastmodifieddate`` always come back. ``total`` counts every match; a query serves at most
  ``search_cap`` results (10,000 at HubSpot): an ``after`` at or past it is HTTP 400. More than
  five search calls within a second is HTTP 429 ``RATE_LIMIT`` (``policyName: SECONDLY``).
- ``GET /crm/v3/owners/?archived=true``: the archived (deactivated) owners, else the active ones.
- ``GET /crm/v3/objects/<type>``: a page of objects (``limit`` at most 100, default 10),
  ``archived=true`` for the archived ones (with ``archivedAt``). With ``propertiesWithHistory``
  (repeated or comma-separated), each object carries every value those properties were given,
  newest first (``{"value", "timestamp", "sourceType", "sourceId", "updatedByUserId"}``), and
  ``limit`` is at most 50 (more is HTTP 400 ``VALIDATION_ERROR``, as the client's ``get_all``
  with its default of 100 meets; the message's words are ours).
- A wrong token is HTTP 401 ``INVALID_AUTHENTICATION``; an expired one ``EXPIRED_AUTHENTICATION``.
  Answers other than search carry ``X-HubSpot-RateLimit-Daily`` and ``…-Daily-Remaining``.
"""

from __future__ import annotations

import itertools
import re
import time
from datetime import UTC, datetime
from typing import Any

from tests.fakes.http_fake import FakeServer, Request, Response

TOKEN = "pat-eu1-test-token"
DAILY = 250_000
_DEFAULT_PROPERTIES = ("hs_object_id", "createdate", "hs_lastmodifieddate")


def hs_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(status: int, category: str, message: str) -> Response:
    return Response(status, {"status": "error", "message": message, "category": category,
                             "correlationId": "00000000-0000-0000-0000-000000000000"})  # fmt: skip


class FakeHubSpot(FakeServer):
    def __init__(self, search_cap: int = 10_000) -> None:
        super().__init__()
        self.search_cap = search_cap
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.owners: list[dict[str, Any]] = []
        self.pipelines: list[dict[str, Any]] = []
        self.token = TOKEN
        self.expired = False
        self.daily_used = 0
        self._searches: list[float] = []
        self._ids = itertools.count(1)

    # --- test controls -------------------------------------------------------------------------

    def put(self, kind: str, properties: dict[str, Any], modified: datetime,
            object_id: str | None = None) -> str:  # fmt: skip
        """Create or update an object; properties are stored as HubSpot stores them: text."""
        table = self.objects.setdefault(kind, {})
        object_id = object_id or str(next(self._ids) + 1000)
        old = table.get(
            object_id, {"properties": {}, "createdAt": hs_time(modified), "history": {}}
        )
        given = {k: None if v is None else str(v) for k, v in properties.items()}
        props = {**old["properties"], **given}
        props["hs_object_id"] = object_id
        props["hs_lastmodifieddate"] = hs_time(modified)
        props.setdefault("createdate", old["createdAt"])
        history = {name: list(values) for name, values in old["history"].items()}
        for name, value in given.items():
            # HubSpot keeps each value a property is given (a property never given has none).
            if name in old["properties"] and old["properties"][name] == value:
                continue
            if name not in old["properties"] and value is None:
                continue
            history.setdefault(name, []).insert(0, {
                "value": "" if value is None else value, "timestamp": hs_time(modified),
                "sourceType": "CRM_UI", "sourceId": "userId:1", "updatedByUserId": 1,
            })  # fmt: skip
        table[object_id] = {"id": object_id, "properties": props, "createdAt": old["createdAt"],
                            "updatedAt": hs_time(modified), "archived": False,
                            "history": history}  # fmt: skip
        return object_id

    def archive(self, kind: str, object_id: str, at: datetime) -> None:
        record = self.objects[kind][object_id]
        record.update(archived=True, archivedAt=hs_time(at), updatedAt=hs_time(at))

    @property
    def searches(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/search")]

    # --- the API ---------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
        if self.expired:
            message = "The OAuth token used to make this call expired 2 hour(s) ago."
            return _error(401, "EXPIRED_AUTHENTICATION", message)
        self.daily_used += 1
        if request.path.endswith("/search") and request.method == "POST":
            return self._search(request)
        response = self._get(request)
        response.headers["X-HubSpot-RateLimit-Daily"] = str(DAILY)
        response.headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(DAILY - self.daily_used)
        return response

    def _get(self, request: Request) -> Response:
        archived = (request.param("archived") or "false").lower() == "true"
        if request.path.rstrip("/") == "/crm/v3/owners":
            owners = [o for o in self.owners if o.get("archived", False) == archived]
            return self._paged(owners, request, 100)
        if request.path == "/crm/v3/pipelines/deals":
            return Response(200, {"results": self.pipelines})
        match = re.fullmatch(r"/crm/v3/objects/(\w+)", request.path)
        if match:
            with_history = [name for value in request.query.get("propertiesWithHistory", [])
                            for name in value.split(",") if name]  # fmt: skip
            limit = int(request.param("limit", "10") or 10)
            if with_history and limit > 50:
                return _error(400, "VALIDATION_ERROR",
                              f"limit {limit} is over 50, the most objects a page serves "
                              "with propertiesWithHistory")  # fmt: skip
            rows = [self._served(r, with_history)
                    for _i, r in sorted(self.objects.get(match[1], {}).items())
                    if r["archived"] == archived]  # fmt: skip
            return self._paged(rows, request, 100)
        return _error(404, "OBJECT_NOT_FOUND", f"no route for {request.path}")

    @staticmethod
    def _served(record: dict[str, Any], with_history: list[str]) -> dict[str, Any]:
        served = {k: v for k, v in record.items() if k != "history"}
        if with_history:
            served["propertiesWithHistory"] = {
                name: record["history"][name] for name in with_history if name in record["history"]
            }
        return served

    @staticmethod
    def _paged(rows: list[dict[str, Any]], request: Request, maximum: int) -> Response:
        limit = min(int(request.param("limit", "10") or 10), maximum)
        start = int(request.param("after", "0") or 0)
        body: dict[str, Any] = {"results": rows[start : start + limit]}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": str(start + limit), "link": "?after="}}
        return Response(200, body)

    def _search(self, request: Request) -> Response:
        now = time.monotonic()
        self._searches = [t for t in self._searches if now - t < 1.0] + [now]
        if len(self._searches) > 5:
            return Response(429, {"status": "error", "message": "You have reached your secondly "
                                  "limit.", "errorType": "RATE_LIMIT", "policyName": "SECONDLY",
                                  "correlationId": "0"})  # fmt: skip
        kind = request.path.split("/")[-2]
        body = request.json()
        limit = int(body.get("limit") or 10)
        after = int(body.get("after") or 0)
        if limit > 200:
            return _error(400, "VALIDATION_ERROR", "limit must be at most 200")
        if after >= self.search_cap:
            return _error(400, "VALIDATION_ERROR",
                          f"Search results are limited to {self.search_cap}.")  # fmt: skip
        rows = [r for r in self.objects.get(kind, {}).values() if not r["archived"]]
        for group in body.get("filterGroups") or []:
            for condition in group["filters"]:
                rows = [r for r in rows if self._matches(r, condition)]
        rows.sort(key=lambda r: int(r["id"]))
        wanted = [*_DEFAULT_PROPERTIES, *(body.get("properties") or [])]
        page = rows[after : after + limit]
        results = [
            {**{k: v for k, v in r.items() if k not in ("properties", "history")},
             "properties": {p: r["properties"].get(p) for p in wanted}}
            for r in page
        ]  # fmt: skip
        out: dict[str, Any] = {"total": len(rows), "results": results}
        if after + limit < len(rows):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return Response(200, out)

    @staticmethod
    def _matches(row: dict[str, Any], condition: dict[str, Any]) -> bool:
        name, op, value = condition["propertyName"], condition["operator"], condition["value"]
        raw = row["properties"].get(name)
        if raw is None:
            return False
        if name == "hs_lastmodifieddate":
            have = datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1000
            want = float(value)
        else:
            have, want = float(raw), float(value)
        assert op in ("GTE", "GT"), op
        return have >= want if op == "GTE" else have > want
