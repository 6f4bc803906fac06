"""HubSpot through hubspot-api-client (a private app's token): owners → reps (their primary
team as team), companies → accounts, contacts → leads (converted when they reached one of
``converted_stages``), deals → opportunities, with stages read from the deal pipelines
(label, probability, closed won or lost).

Companies, contacts and deals are read with the CRM search API, sorted on ``hs_object_id`` and
filtered on ``hs_lastmodifieddate`` for incremental syncs. Search pages follow ``after``; as
search serves at most 10,000 results per query, a longer read starts a new query after the
last id seen. Search calls are spaced to stay under the documented rate (five a second); 429,
5xx and timeouts are retried by the HTTP pool; the daily allowance comes from the
``X-HubSpot-RateLimit-Daily`` headers. Deleted (archived) deals are listed with
``archived=true``: HubSpot has no search over them, so that list is read whole, and only once
per ``deletions_every`` by incremental syncs (``bot.sources.service`` keeps the cadence).

Owners are read active and archived (deactivated users still own deals; an archived owner's
last update is taken as the day it left). At the first sync, the deals' property history
(``propertiesWithHistory`` on the deals list, 50 deals a page, HubSpot's cap when history is
asked) gives their earlier states (``bot.sources.backfill``)."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from hubspot import HubSpot
from hubspot.crm import companies, contacts, deals, owners, pipelines
from urllib3.util.retry import Retry

from bot.settings import HubSpotSource
from bot.sources.connector import (
    Budget,
    FieldChange,
    HistoryCut,
    Record,
    SourceError,
    SourceObject,
)

SEARCH_CAP = 10_000  # results one search query serves, at most
# Seconds between search calls: four a second, a margin under the documented five, as the
# server counts them on arrival, when network jitter has bunched them up.
SEARCH_INTERVAL = 0.25
_RETRIED = (429, 500, 502, 503, 504)
_MODIFIED = "hs_lastmodifieddate"
# Each API of the client is a package of its own, with its own exception class.
_PACKAGES = {"companies": companies, "contacts": contacts, "deals": deals}
_API_ERRORS: tuple[type[Exception], ...] = tuple(
    package.exceptions.ApiException for package in (companies, contacts, deals, owners, pipelines)
)

# Search objects: (name, canonical table, HubSpot property per canonical field).
_SEARCHED: tuple[tuple[str, str, Mapping[str, str]], ...] = (
    ("companies", "accounts", {"name": "name", "segment": "type", "industry": "industry",
                               "country": "country"}),
    ("deals", "opportunities", {"name": "dealname", "owner": "hubspot_owner_id",
                                "stage": "dealstage", "amount": "amount",
                                "currency": "deal_currency_code", "created_at": "createdate",
                                "close_date": "closedate",
                                "probability": "hs_deal_stage_probability",
                                "forecast_category": "hs_manual_forecast_category"}),
    ("contacts", "leads", {"created_at": "createdate", "owner": "hubspot_owner_id",
                           "channel": "hs_analytics_source",
                           "account": "associatedcompanyid"}),
)  # fmt: skip


# The deals list serves at most 50 deals a page when property history is asked (100 without).
HISTORY_PAGE = 50
# Deal property → canonical field whose history the backfill reads.
_HISTORY = {
    "dealstage": "stage", "amount": "amount", "deal_currency_code": "currency",
    "closedate": "close_date", "hs_deal_stage_probability": "probability",
    "hubspot_owner_id": "owner",
}  # fmt: skip
# A property's oldest value set this soon after the deal's creation is the value it was created
# with, not a change from empty (HubSpot stamps values written with the deal at its creation,
# calculated ones such as the stage probability a moment later).
_AT_CREATION = timedelta(minutes=1)


class _Pacer:
    """Spaces search calls made with one token, by every connector of this process (a sync
    from chat right after a scheduled one must not burst past the limit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = float("-inf")

    def wait(self, interval: float) -> None:
        with self._lock:
            pause = self._last + interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._last = time.monotonic()


@functools.cache
def _pacer(key: str) -> _Pacer:
    return _Pacer()


def _epoch_ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _parse(raw: str | None) -> datetime | None:
    if not raw:
        return None
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


class HubSpotConnector:
    def __init__(
        self,
        name: str,
        spec: HubSpotSource,
        secrets: Mapping[str, str],
        *,
        backoff: float = 1.0,
        search_cap: int = SEARCH_CAP,
        search_interval: float = SEARCH_INTERVAL,
    ) -> None:
        token = secrets.get("token")
        prefix = spec.env_prefix or "HUBSPOT"
        if not token:
            raise SourceError("source.hubspot.no_token", source=name, variable=f"{prefix}_TOKEN")
        self.name = name
        self.spec = spec
        self.calls = 0
        self.totals: dict[str, int] = {}
        self._prefix = prefix
        self._search_cap = search_cap
        self._interval = search_interval
        digest = hashlib.sha256(token.encode()).hexdigest()[:16]
        self._pacer = _pacer(f"{spec.host}|{digest}")
        retry = Retry(
            total=spec.max_retries, connect=spec.max_retries, read=spec.max_retries,
            status=spec.max_retries, status_forcelist=_RETRIED, allowed_methods=None,
            backoff_factor=backoff, respect_retry_after_header=True, raise_on_status=False,
        )  # fmt: skip
        self._client = HubSpot(access_token=token, retry=retry, host=spec.host.rstrip("/"))
        self._budget: Budget | None = None
        self._stages: dict[str, dict[str, Any]] | None = None
        self.history_cut: HistoryCut | None = None  # every deal's history is read

    # --- calls ----------------------------------------------------------------------------------

    def _call(self, api: Any, method: str, **kwargs: Any) -> Any:
        self.calls += 1
        try:
            result = getattr(api, method)(_request_timeout=self.spec.timeout, **kwargs)
        except _API_ERRORS as error:
            raise self._error(error) from None
        except urllib3.exceptions.HTTPError as error:
            raise SourceError(
                "source.no_answer", crm="HubSpot", where=self.spec.host, error=str(error)
            ) from None
        self._read_budget(api.api_client.last_response)
        return result

    def _read_budget(self, response: Any) -> None:
        headers = response.getheaders() if response is not None else {}
        limit = headers.get("X-HubSpot-RateLimit-Daily")
        left = headers.get("X-HubSpot-RateLimit-Daily-Remaining")
        if limit is not None and left is not None:
            self._budget = Budget(int(limit) - int(left), int(limit), "API calls today")

    def _error(self, error: Any) -> SourceError:
        try:
            body = json.loads(error.body or "{}")
        except (ValueError, TypeError):
            body = {}
        message = body.get("message") or error.reason or "-"
        category = body.get("category") or body.get("errorType") or ""
        if error.status == 401:
            return SourceError(
                "source.hubspot.token_refused", category=category, message=message,
                variable=f"{self._prefix}_TOKEN",
            )  # fmt: skip
        if error.status == 403:
            return SourceError("source.hubspot.forbidden", category=category, message=message)
        if error.status == 429:
            return SourceError(
                "source.hubspot.rate_limited", retries=self.spec.max_retries, message=message
            )
        return SourceError(
            "source.answered", crm="HubSpot", status=error.status, what=category, message=message
        )

    def _search(self, obj: str, properties: list[str], since: datetime | None) -> Iterator[Any]:
        """Every object matching, in id order, over as many search queries as the cap needs."""
        api = getattr(self._client.crm, obj).search_api
        last_id: str | None = None
        while True:
            filters = []
            if since is not None:
                filters.append({"propertyName": _MODIFIED, "operator": "GTE",
                                "value": _epoch_ms(since)})  # fmt: skip
            if last_id is not None:
                filters.append({"propertyName": "hs_object_id", "operator": "GT",
                                "value": last_id})  # fmt: skip
            after: str | None = None
            served = 0
            while True:
                request = _PACKAGES[obj].PublicObjectSearchRequest(
                    filter_groups=[{"filters": filters}] if filters else [],
                    sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    properties=properties, limit=self.spec.page_size, after=after,
                )  # fmt: skip
                self._pacer.wait(self._interval)
                page = self._call(api, "do_search", public_object_search_request=request)
                if last_id is None and after is None:
                    self.totals[obj] = int(page.total)
                for result in page.results:
                    last_id = result.id
                    yield result
                served += len(page.results)
                following = page.paging.next.after if page.paging and page.paging.next else None
                if following is None:
                    return
                if served + self.spec.page_size > self._search_cap:
                    break  # the next page would pass the cap: a new query after last_id
                after = following

    def _stage_table(self) -> dict[str, dict[str, Any]]:
        if self._stages is None:
            pipelines = self._call(
                self._client.crm.pipelines.pipelines_api, "get_all", object_type="deals"
            )
            self._stages = {}
            for pipeline in pipelines.results:
                for stage in pipeline.stages:
                    metadata = stage.metadata or {}
                    closed = str(metadata.get("isClosed", "false")).lower() == "true"
                    probability = metadata.get("probability")
                    won = closed and probability is not None and float(probability) >= 1
                    status = "won" if won else "lost" if closed else "open"
                    self._stages[stage.id] = {
                        "label": stage.label, "status": status, "probability": probability,
                    }  # fmt: skip
        return self._stages

    # --- Connector --------------------------------------------------------------------------

    def objects(self) -> list[SourceObject]:
        stages = {row["label"]: row["status"] for row in self._stage_table().values()}
        stages.update(self.spec.stages)
        owner_fields = ("id", "name", "email", "team", "active_to")
        out = [SourceObject("owners", "reps", owner_fields, users=True)]
        for name, table, fields in _SEARCHED:
            columns = ("id", *fields)
            if table == "leads":
                columns += ("converted_at",)
            if name == "deals":
                every = self.spec.deletions_every
                out.append(SourceObject(name, table, columns, stages, deletions_every=every))
            else:
                out.append(SourceObject(name, table, columns))
        return out

    def changed(self, obj: SourceObject, since: datetime | None) -> Iterator[Record]:
        if obj.name == "owners":
            yield from self._owners()
            return
        fields = dict(next(f for n, _t, f in _SEARCHED if n == obj.name))
        properties = [*fields.values(), _MODIFIED]
        converted = [f"hs_lifecyclestage_{stage}_date" for stage in self.spec.converted_stages]
        if obj.table == "leads":
            properties += converted
        stages = self._stage_table() if obj.name == "deals" else {}
        for result in self._search(obj.name, properties, since):
            props = result.properties or {}
            values: dict[str, Any] = {"id": result.id}
            values.update({field: props.get(prop) for field, prop in fields.items()})
            if obj.name == "deals":
                stage = stages.get(values["stage"] or "")
                if stage is not None:
                    values["stage"] = stage["label"]
                    if values["probability"] is None:  # calculated by HubSpot from the stage
                        values["probability"] = stage["probability"]
            if obj.table == "leads":
                dates = sorted(props[p] for p in converted if props.get(p))
                values["converted_at"] = dates[0] if dates else None
            yield Record(values, _parse(props.get(_MODIFIED)) or result.updated_at)

    def _owners(self) -> Iterator[Record]:
        # Owners are few and have no search: each sync reads the list (a page or two), the
        # archived (deactivated) ones too, as their deals are still theirs.
        api = self._client.crm.owners.owners_api
        for archived in (False, True):
            after: str | None = None
            while True:
                page = self._call(
                    api, "get_page", limit=min(self.spec.page_size, 100), after=after,
                    archived=archived,
                )  # fmt: skip
                for owner in page.results:
                    yield _owner(owner)
                if not (page.paging and page.paging.next):
                    break
                after = page.paging.next.after

    def deleted(self, obj: SourceObject, since: datetime) -> Iterator[str]:
        if obj.name != "deals":
            return
        api = self._client.crm.deals.basic_api
        after: str | None = None
        while True:
            page = self._call(api, "get_page", limit=100, after=after, archived=True)
            for deal in page.results:
                archived_at = deal.archived_at or deal.updated_at
                if archived_at is None or archived_at.astimezone(UTC) >= since:
                    yield str(deal.id)
            if not (page.paging and page.paging.next):
                return
            after = page.paging.next.after

    def field_history(self, obj: SourceObject) -> Iterator[FieldChange]:
        """The deals' changes of stage, amount, currency, close date, probability and owner
        from their property history: the deals list with ``propertiesWithHistory``,
        ⌈deals / 50⌉ calls."""
        if obj.name != "deals":
            return
        api = self._client.crm.deals.basic_api
        stages = self._stage_table()
        after: str | None = None
        while True:
            page = self._call(
                api, "get_page", limit=HISTORY_PAGE, after=after,
                properties_with_history=list(_HISTORY), archived=False,
            )  # fmt: skip
            for deal in page.results:
                yield from _deal_changes(deal, stages)
            if not (page.paging and page.paging.next):
                return
            after = page.paging.next.after

    def budget(self) -> Budget | None:
        return self._budget

    def close(self) -> None:
        pass


def _owner(owner: Any) -> Record:
    teams = owner.teams or []
    primary = next((t for t in teams if t.primary), teams[0] if teams else None)
    name = " ".join(p for p in (owner.first_name, owner.last_name) if p)
    left = owner.updated_at.date() if owner.archived and owner.updated_at else None
    values = {"id": owner.id, "name": name or owner.email, "email": owner.email,
              "team": primary.name if primary else None, "active_to": left}  # fmt: skip
    return Record(values, owner.updated_at)


def _deal_changes(deal: Any, stages: Mapping[str, Mapping[str, Any]]) -> Iterator[FieldChange]:
    """A deal's property history as changes: HubSpot lists the values each property was
    given, with when; each one after the first changed it from the one before. The first is
    the value the deal was created with, unless it was given later to a property that was
    empty until then (a deal is always created with a stage). A stage id is read as its
    label; without a history of the stage probability, each stage change also changes the
    probability from the old stage's to the new one's, which is how HubSpot calculates it."""
    created = deal.created_at
    history = deal.properties_with_history or {}
    derived = not history.get("hs_deal_stage_probability")
    key = str(deal.id)
    for prop, values in history.items():
        field = _HISTORY.get(prop)
        if field is None:
            continue
        before: str | None = None
        for number, entry in enumerate(sorted(values, key=lambda entry: entry.timestamp)):
            value = entry.value or None
            initial = number == 0 and (
                field == "stage" or created is None or entry.timestamp - created <= _AT_CREATION
            )
            if not initial and field != "stage":
                yield FieldChange(key, field, before, value, entry.timestamp)
            elif not initial:
                (old, old_chance), (new, new_chance) = (
                    _stage_reading(stages, before), _stage_reading(stages, value)
                )  # fmt: skip
                yield FieldChange(key, "stage", old, new, entry.timestamp)
                if derived:
                    yield FieldChange(key, "probability", old_chance, new_chance, entry.timestamp)
            before = value


def _stage_reading(stages: Mapping[str, Mapping[str, Any]], stage: str | None) -> tuple[Any, Any]:
    """A stage id's label and probability (an id no pipeline has any more stays as it is)."""
    known = stages.get(stage or "")
    return (stage, None) if known is None else (known["label"], known["probability"])
