"""Pipedrive over httpx: API v2 for deals, organizations and stages (the v1 deals endpoints
are out of support), v1 for users and leads, which have no v2 endpoints.

Deals are read in cursor pages (``additional_data.next_cursor``), with ``updated_since`` after
the first sync and ``status=open,won,lost,deleted``, so that deals deleted since (Pipedrive
keeps them 30 days) come in the same pages and cost nothing more. A deal's stage is its
stage's name while open, ``won`` or ``lost`` once closed; its close date the won or lost time,
else the expected close date. Leads come newest change first (``sort=update_time DESC``) and
the read stops at the high-water mark. 429, 5xx, timeouts and dropped connections are retried
by the one transport (``Retry-After``, else ``x-ratelimit-reset``, else exponential backoff),
except a 429 saying the company's daily token budget is spent, which only tomorrow cures: that
stops the sync with a message. The budget used and left is read from every answer's
``x-daily-ratelimit-token-*`` headers.

At the first sync, each deal's changelog (``/v1/deals/{id}/changelog``, cursor pages) gives its
earlier states (``bot.sources.backfill``). Pipedrive has no changelog of many deals at once, so
this costs a call per deal: only deals updated after their creation are read, the most recently
updated first, and the read stops once the day's budget is down to ``backfill_reserve`` of it,
naming the deals left unread (``HistoryCut``)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.settings import PipedriveSource
from bot.sources.connector import (
    Budget,
    FieldChange,
    HistoryCut,
    Record,
    SourceError,
    SourceObject,
)

_RETRIED = frozenset({429, 500, 502, 503, 504})
_WAIT_CAP = 60.0  # seconds: never wait longer for one retry
# The company's daily token budget (token-based rate limits). Pipedrive sends these on
# answers without documenting them, and may leave them out for a while after a quiet spell.
_TOKEN_LIMIT = "x-daily-ratelimit-token-limit"
_TOKENS_LEFT = "x-daily-ratelimit-token-remaining"


# A deal's fields its canonical values are made of (v2 names).
_DEAL_FIELDS = ("status", "stage_id", "value", "currency", "expected_close_date", "won_time",
                "lost_time", "close_time", "owner_id", "probability")  # fmt: skip
# A changelog's field_key → the deal field it changed (v1 names the owner user_id).
_CHANGELOG_FIELDS = {**{name: name for name in _DEAL_FIELDS}, "user_id": "owner_id"}


def budget_spent(response: httpx.Response) -> bool:
    """A 429 for the day's budget, not the two-second burst limit: waiting will not help."""
    return response.status_code == 429 and response.headers.get(_TOKENS_LEFT) == "0"


class RetryTransport(httpx.BaseTransport):
    """Retries 429, 5xx, timeouts and dropped connections with backoff; the last answer (or
    error) is the caller's."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        retries: int,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.inner.handle_request(request)
            except (httpx.TimeoutException, httpx.NetworkError):
                if last:
                    raise
                self.sleep(self._delay(attempt, None))
                continue
            if response.status_code not in _RETRIED or last or budget_spent(response):
                return response
            response.read()
            response.close()
            self.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            for header in ("retry-after", "x-ratelimit-reset"):
                value = response.headers.get(header, "")
                if value.replace(".", "", 1).isdigit():
                    return min(float(value), _WAIT_CAP)
        return min(self.backoff * float(1 << attempt), _WAIT_CAP)

    def close(self) -> None:
        self.inner.close()


def _time(raw: str | None) -> datetime | None:
    """v2 writes RFC 3339 (``2026-11-30T10:00:00Z``), v1 ``2026-11-30 10:00:00`` (UTC)."""
    if not raw:
        return None
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class PipedriveConnector:
    def __init__(
        self,
        name: str,
        spec: PipedriveSource,
        secrets: Mapping[str, str],
        *,
        transport: httpx.BaseTransport | None = None,
        backoff: float = 1.0,
    ) -> None:
        token = secrets.get("api_token")
        self._prefix = spec.env_prefix or "PIPEDRIVE"
        if not token:
            raise SourceError(
                "source.pipedrive.no_token", source=name, variable=f"{self._prefix}_API_TOKEN"
            )
        self.name = name
        self.spec = spec
        self.calls = 0
        self.totals: dict[str, int] = {}  # Pipedrive's cursor pages give no total
        retrying = RetryTransport(transport or httpx.HTTPTransport(), spec.max_retries, backoff)
        self._http = httpx.Client(
            base_url=spec.api_url, transport=retrying, timeout=spec.timeout,
            headers={"x-api-token": token, "accept": "application/json"},
        )  # fmt: skip
        self._stages: dict[int, dict[str, Any]] | None = None
        self._deleted: list[str] = []
        self._budget: Budget | None = None
        # Deals a full read found updated since their creation: (update time, id, fields),
        # the ones whose changelog the backfill reads.
        self._updated: list[tuple[datetime, str, dict[str, Any]]] = []
        self.history_cut: HistoryCut | None = None

    # --- calls ----------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        try:
            response = self._http.get(
                path, params={k: v for k, v in params.items() if v is not None}
            )
        except httpx.HTTPError as error:
            raise SourceError(
                "source.no_answer", crm="Pipedrive", where=self.spec.api_url, error=repr(error)
            ) from None
        self._read_budget(response)
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {}
        if response.status_code == 401:
            raise SourceError(
                "source.pipedrive.token_refused",
                error=body.get("error", "unauthorized"),
                variable=f"{self._prefix}_API_TOKEN",
            )
        if response.status_code == 403:
            raise SourceError(
                "source.pipedrive.forbidden", path=path, error=body.get("error", "forbidden")
            )
        if budget_spent(response):
            if self._budget is None:
                raise SourceError("source.pipedrive.budget_spent")
            raise SourceError("source.pipedrive.budget_spent.of", limit=self._budget.limit)
        if response.status_code == 429:
            raise SourceError("source.pipedrive.rate_limited", retries=self.spec.max_retries)
        if response.status_code >= 400 or not body.get("success", False):
            detail = body.get("error") or response.reason_phrase
            raise SourceError(
                "source.answered", crm="Pipedrive", status=response.status_code, what=path,
                message=detail,
            )  # fmt: skip
        return body

    def _cursor_pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            body = self._get(path, {**params, "limit": self.spec.page_size, "cursor": cursor})
            yield from body.get("data") or []
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return

    def _stage_table(self) -> dict[int, dict[str, Any]]:
        if self._stages is None:
            self._stages = {int(s["id"]): s for s in self._cursor_pages("/v2/stages", {})}
        return self._stages

    # --- Connector --------------------------------------------------------------------------

    def objects(self) -> list[SourceObject]:
        stages = {str(s["name"]): "open" for s in self._stage_table().values()}
        stages.update({"won": "won", "lost": "lost"})
        stages.update(self.spec.stages)
        deal_fields = ("id", "name", "owner", "account", "stage", "amount", "currency",
                       "created_at", "close_date", "probability")  # fmt: skip
        return [
            SourceObject("users", "reps", ("id", "name", "email", "active_from"), users=True),
            SourceObject("organizations", "accounts", ("id", "name")),
            SourceObject("deals", "opportunities", deal_fields, stages),
            SourceObject("leads", "leads", ("id", "created_at", "owner", "channel", "account")),
        ]

    def changed(self, obj: SourceObject, since: datetime | None) -> Iterator[Record]:
        if obj.name == "users":
            yield from self._users()
        elif obj.name == "organizations":
            for org in self._cursor_pages("/v2/organizations", {"updated_since": _rfc3339(since)}):
                yield Record(
                    {"id": org["id"], "name": org.get("name")}, _time(org.get("update_time"))
                )
        elif obj.name == "deals":
            yield from self._deals(since)
        else:
            yield from self._leads(since)

    def _users(self) -> Iterator[Record]:
        # A company has few users and the endpoint has no filter: each sync reads the list.
        for user in self._get("/v1/users", {}).get("data") or []:
            modified = _time(user.get("modified"))
            created = _time(user.get("created"))
            values = {"id": user["id"], "name": user.get("name"), "email": user.get("email"),
                      "active_from": created.date() if created else None}  # fmt: skip
            yield Record(values, modified)

    def _deals(self, since: datetime | None) -> Iterator[Record]:
        self._deleted = []
        self._updated = []
        stages = self._stage_table()
        params = {"updated_since": _rfc3339(since), "status": "open,won,lost,deleted",
                  "sort_by": "update_time", "sort_direction": "asc"}  # fmt: skip
        for deal in self._cursor_pages("/v2/deals", params):
            modified = _time(deal.get("update_time"))
            if deal.get("status") == "deleted" or deal.get("is_deleted"):
                self._deleted.append(str(deal["id"]))
                continue
            created = _time(deal.get("add_time"))
            if since is None and modified and created and modified > created:
                fields = {name: deal.get(name) for name in _DEAL_FIELDS}
                self._updated.append((modified, str(deal["id"]), fields))
            values = {"id": deal["id"], "name": deal.get("title"), "account": deal.get("org_id"),
                      "created_at": deal.get("add_time"), **_canonical(deal, stages)}  # fmt: skip
            yield Record(values, modified)

    def _leads(self, since: datetime | None) -> Iterator[Record]:
        start = 0
        while True:
            body = self._get("/v1/leads", {"limit": self.spec.page_size, "start": start,
                                           "sort": "update_time DESC"})  # fmt: skip
            for lead in body.get("data") or []:
                modified = _time(lead.get("update_time"))
                if since is not None and modified is not None and modified < since:
                    return  # newest first: the rest is older than the mark
                values = {"id": lead["id"], "created_at": lead.get("add_time"),
                          "owner": lead.get("owner_id"), "channel": lead.get("source_name"),
                          "account": lead.get("organization_id")}  # fmt: skip
                yield Record(values, modified)
            pagination = (body.get("additional_data") or {}).get("pagination") or {}
            if not pagination.get("more_items_in_collection"):
                return
            start = int(pagination.get("next_start", start + self.spec.page_size))

    def deleted(self, obj: SourceObject, since: datetime) -> Iterator[str]:
        # Deleted deals came with the changed ones (status=deleted): no call of their own.
        return iter(self._deleted if obj.name == "deals" else [])

    def field_history(self, obj: SourceObject) -> Iterator[FieldChange]:
        """The changes of the deals the full read found updated since their creation, from
        their changelogs, a call (or more, past 500 changes) per deal, most recently updated
        first, while the day's budget is above ``backfill_reserve`` of it."""
        if obj.name != "deals":
            return
        self.history_cut = None
        stages = self._stage_table()
        pending = sorted(self._updated, key=lambda deal: deal[0], reverse=True)
        for number, (_modified, key, fields) in enumerate(pending):
            budget = self._budget
            if budget is not None:
                kept = int(budget.limit * self.spec.backfill_reserve)
                left = budget.limit - budget.used
                if left <= kept:
                    unread = frozenset(deal[1] for deal in pending[number:])
                    self.history_cut = HistoryCut(unread, kept, left, budget.limit)
                    return
            changelog = self._cursor_pages(f"/v1/deals/{key}/changelog", {})
            yield from _undone(key, fields, list(changelog), stages)

    def _read_budget(self, response: httpx.Response) -> None:
        limit, left = response.headers.get(_TOKEN_LIMIT), response.headers.get(_TOKENS_LEFT)
        if limit is not None and left is not None and limit.isdigit() and left.isdigit():
            self._budget = Budget(int(limit) - int(left), int(limit), "API tokens today")

    def budget(self) -> Budget | None:
        return self._budget

    def close(self) -> None:
        self._http.close()


def _rfc3339(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _canonical(deal: Mapping[str, Any], stages: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """A deal's owner, stage, amount, currency, close date and probability as kpibot reads
    them: the stage's name while open, ``won`` or ``lost`` once closed; the close date the won
    or lost time, else the expected close date; the stage's probability when the deal has
    none."""
    status = deal.get("status")
    stage_id = deal.get("stage_id")
    stage = stages.get(int(str(stage_id))) if str(stage_id).isdigit() else None
    if status in ("won", "lost"):
        stage_name: Any = status
        closed = deal.get(f"{status}_time") or deal.get("close_time")
    else:
        stage_name = stage["name"] if stage else stage_id
        closed = deal.get("expected_close_date")
    probability = deal.get("probability")
    if probability in (None, "") and stage is not None:
        probability = stage.get("deal_probability")
    return {
        "owner": deal.get("owner_id"), "stage": stage_name, "amount": deal.get("value"),
        "currency": deal.get("currency"), "close_date": closed,
        "probability": None if probability in (None, "") else f"{probability}%",
    }  # fmt: skip


def _undone(
    key: str, fields: Mapping[str, Any], changelog: list[dict[str, Any]],
    stages: Mapping[int, Mapping[str, Any]],
) -> Iterator[FieldChange]:  # fmt: skip
    """The canonical changes a deal's changelog implies: its fields are taken back through
    the changes, newest first, and each canonical value that differs before and after a
    moment is a change (a status change to won alters the stage and the close date)."""
    by_moment: dict[datetime, list[tuple[str, Any]]] = defaultdict(list)
    for entry in changelog:
        name = _CHANGELOG_FIELDS.get(str(entry.get("field_key")))
        moment = _time(entry.get("time"))
        if name is not None and moment is not None:
            old = entry.get("old_value")
            by_moment[moment].append((name, None if old == "" else old))
    state = dict(fields)
    after = _canonical(state, stages)
    for moment in sorted(by_moment, reverse=True):
        state.update(by_moment[moment])
        before = _canonical(state, stages)
        for field, value in before.items():
            if value != after[field]:
                yield FieldChange(key, field, value, after[field], moment)
        after = before
