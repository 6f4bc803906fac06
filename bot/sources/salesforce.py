"""Salesforce through simple-salesforce: User → reps (their role as team), Account →
accounts, Opportunity → opportunities, Lead → leads; stages, default probabilities and
forecast categories from OpportunityStage; each deal's CurrencyIsoCode when Opportunity's
description has the field (multi-currency orgs).

SOQL pages follow ``nextRecordsUrl`` (``Sforce-Query-Options: batchSize``); incremental syncs
filter on ``SystemModstamp`` (users are read whole); deletions come from ``queryAll`` with
``IsDeleted = true``, and the first page's ``totalSize`` sizes the progress bar. At the first
sync, ``OpportunityFieldHistory`` (one paged query) gives the deals' earlier states
(``bot.sources.backfill``). The
org's API usage is read from the ``Sforce-Limit-Info`` header of every answer. 429, 5xx and
timeouts are retried by the HTTP session (``Retry-After`` honoured); ``REQUEST_LIMIT_EXCEEDED``
(HTTP 403) stops the sync with a message saying when to retry; an expired session is renewed
by logging in again when the credentials allow it, and reported otherwise."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
)
from simple_salesforce.util import Usage
from urllib3.util.retry import Retry

from bot.settings import SalesforceSource
from bot.sources.connector import (
    Budget,
    FieldChange,
    HistoryCut,
    Record,
    SourceError,
    SourceObject,
)
from conversation.views import Phrase

_RETRIED = (429, 500, 502, 503, 504)
# Owners that are queues (ids starting 00G) are not reps: their leads are left unowned.
_QUEUE_PREFIX = "00G"


class RetryingAdapter(HTTPAdapter):
    """Retries (429/5xx/timeouts, honouring Retry-After) and a timeout on every request."""

    def __init__(self, timeout: float, retries: int, backoff: float) -> None:
        retry = Retry(
            total=retries, connect=retries, read=retries, status=retries,
            status_forcelist=_RETRIED, allowed_methods=None, backoff_factor=backoff,
            respect_retry_after_header=True, raise_on_status=False,
        )  # fmt: skip
        super().__init__(max_retries=retry)
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def http_session(spec: SalesforceSource, backoff: float = 1.0) -> requests.Session:
    session = requests.Session()
    adapter = RetryingAdapter(spec.timeout, spec.max_retries, backoff)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# (object, canonical table, SOQL field per canonical field); the modification stamp is added.
_OBJECTS: tuple[tuple[str, str, Mapping[str, str]], ...] = (
    ("User", "reps", {"id": "Id", "name": "Name", "email": "Email", "team": "UserRole.Name",
                      "active_from": "CreatedDate"}),
    ("Account", "accounts", {"id": "Id", "name": "Name", "segment": "Type",
                             "industry": "Industry", "country": "BillingCountry"}),
    ("Opportunity", "opportunities", {
        "id": "Id", "name": "Name", "owner": "OwnerId", "account": "AccountId",
        "stage": "StageName", "amount": "Amount", "currency": "CurrencyIsoCode",
        "created_at": "CreatedDate", "close_date": "CloseDate", "probability": "Probability",
        "forecast_category": "ForecastCategoryName",
    }),
    ("Lead", "leads", {"id": "Id", "created_at": "CreatedDate", "owner": "OwnerId",
                       "converted_at": "ConvertedDate", "channel": "LeadSource",
                       "account": "ConvertedAccountId"}),
)  # fmt: skip
_FILTERS = {"User": "UserType = 'Standard'"}
# OpportunityFieldHistory's Field value → the canonical field. A change of owner is recorded
# as "Owner" twice, once with the users' names and once with their ids (DataType EntityId):
# only the latter is read.
_HISTORY_FIELDS = {
    "StageName": "stage", "Amount": "amount", "CloseDate": "close_date",
    "Probability": "probability", "Owner": "owner",
}  # fmt: skip
_DELETABLE = frozenset({"Account", "Opportunity", "Lead"})


def _soql_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(raw: str | None) -> datetime | None:
    # Salesforce writes 2026-11-30T10:00:00.000+0000
    return None if not raw else datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S.%f%z")


def _percent(probability: Any) -> str | None:
    """A probability as Salesforce gives it, 0 to 100, marked as a percentage: the import reads
    a bare 1 or 0.5 as a share (100 %, 50 %), which in Salesforce means 1 % and 0.5 %."""
    return None if probability is None else f"{probability}%"


def _field(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class SalesforceConnector:
    def __init__(
        self,
        name: str,
        spec: SalesforceSource,
        secrets: Mapping[str, str],
        session: requests.Session | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.calls = 0
        self.totals: dict[str, int] = {}
        self.history_cut: HistoryCut | None = None  # one query reads every deal's history
        self._session = session or http_session(spec)
        self._session.hooks["response"].append(self._count)
        self._sf = self._login(secrets)
        self._stages: dict[str, dict[str, Any]] | None = None
        self._currency_per_record: bool | None = None

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.calls += 1

    def _login(self, secrets: Mapping[str, str]) -> Salesforce:
        spec = self.spec
        prefix = spec.env_prefix or "SALESFORCE"
        common: dict[str, Any] = {"version": spec.api_version, "session": self._session}
        try:
            if secrets.get("access_token") and spec.instance_url:
                return Salesforce(
                    instance_url=spec.instance_url, session_id=secrets["access_token"], **common
                )
            if secrets.get("username") and secrets.get("password"):
                if secrets.get("consumer_key") and secrets.get("consumer_secret"):
                    return Salesforce(
                        username=secrets["username"], password=secrets["password"],
                        consumer_key=secrets["consumer_key"],
                        consumer_secret=secrets["consumer_secret"], domain=spec.domain, **common,
                    )  # fmt: skip
                return Salesforce(
                    username=secrets["username"], password=secrets["password"],
                    security_token=secrets.get("security_token", ""), domain=spec.domain,
                    **common,
                )  # fmt: skip
            if secrets.get("consumer_key") and secrets.get("consumer_secret"):
                return Salesforce(
                    consumer_key=secrets["consumer_key"],
                    consumer_secret=secrets["consumer_secret"], domain=spec.domain, **common,
                )  # fmt: skip
        except SalesforceAuthenticationFailed as error:
            raise SourceError(
                "source.salesforce.login_refused", domain=spec.domain, error=str(error),
                prefix=prefix,
            ) from None  # fmt: skip
        except requests.RequestException as error:
            raise SourceError(
                "source.no_answer", crm="Salesforce", where=spec.domain, error=str(error)
            ) from None
        raise SourceError("source.salesforce.no_credentials", source=self.name, prefix=prefix)

    # --- queries ----------------------------------------------------------------------------

    def _pages(
        self, soql: str, include_deleted: bool = False, counted: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The query's records, page after page; ``counted``: the object whose total this is."""
        headers = {"Sforce-Query-Options": f"batchSize={self.spec.page_size}"}
        try:
            result = self._sf.query(soql, include_deleted=include_deleted, headers=headers)
            if counted is not None:
                self.totals[counted] = int(result["totalSize"])
            while True:
                yield from result["records"]
                if result["done"]:
                    return
                result = self._sf.query_more(
                    result["nextRecordsUrl"], identifier_is_url=True, headers=headers
                )
        except SalesforceError as error:
            raise self._error(error) from None
        except requests.RequestException as error:
            raise self._unanswered(error) from None

    def _unanswered(self, error: requests.RequestException) -> SourceError:
        return SourceError(
            "source.no_answer", crm="Salesforce", where=self.spec.domain, error=str(error)
        )

    def _error(self, error: SalesforceError) -> SourceError:
        content = error.content
        first: Any = content[0] if isinstance(content, list) and content else {}
        code = first.get("errorCode", "") if isinstance(first, dict) else ""
        message = first.get("message", str(content)) if isinstance(first, dict) else str(content)
        if code == "REQUEST_LIMIT_EXCEEDED":
            budget = self.budget()
            retry = datetime.now(UTC) + timedelta(hours=1)
            used = (
                ""
                if budget is None
                else Phrase("source.salesforce.used", {"used": budget.used, "limit": budget.limit})
            )
            return SourceError(
                "source.salesforce.limit_spent", retry_after=retry, used=used, message=message,
                time=f"{retry:%H:%M}",
            )  # fmt: skip
        if isinstance(error, SalesforceExpiredSession):
            prefix = self.spec.env_prefix or "SALESFORCE"
            return SourceError("source.salesforce.session_expired", message=message, prefix=prefix)
        return SourceError(
            "source.answered", crm="Salesforce", status=error.status, what=code, message=message
        )

    def _multi_currency(self) -> bool:
        """Whether the org has multi-currency on: only then has Opportunity a CurrencyIsoCode
        (querying the field elsewhere fails), so its description says so."""
        if self._currency_per_record is None:
            try:
                described = self._sf.restful("sobjects/Opportunity/describe") or {}
            except SalesforceError as error:
                raise self._error(error) from None
            except requests.RequestException as error:
                raise self._unanswered(error) from None
            names = {field.get("name") for field in described.get("fields") or []}
            self._currency_per_record = "CurrencyIsoCode" in names
        return self._currency_per_record

    def _stage_table(self) -> dict[str, dict[str, Any]]:
        if self._stages is None:
            soql = (
                "SELECT MasterLabel, IsClosed, IsWon, DefaultProbability, ForecastCategoryName "
                "FROM OpportunityStage"
            )
            self._stages = {row["MasterLabel"]: row for row in self._pages(soql)}
        return self._stages

    # --- Connector ----------------------------------------------------------------------------

    def objects(self) -> list[SourceObject]:
        out = []
        for name, table, fields in _OBJECTS:
            columns = tuple(
                field for field in fields
                if field != "currency" or self._multi_currency()
            )  # fmt: skip
            stages: dict[str, str] = {}
            if table == "opportunities":
                for label, row in self._stage_table().items():
                    stages[label] = (
                        "open" if not row["IsClosed"] else "won" if row["IsWon"] else "lost"
                    )
                stages.update(self.spec.stages)
            out.append(SourceObject(name, table, columns, stages, users=name == "User"))
        return out

    def changed(self, obj: SourceObject, since: datetime | None) -> Iterator[Record]:
        fields = dict(next(f for n, _t, f in _OBJECTS if n == obj.name))
        wanted = [fields[field] for field in obj.fields]
        conditions = [_FILTERS[obj.name]] if obj.name in _FILTERS else []
        if since is not None:
            conditions.append(f"SystemModstamp >= {_soql_time(since)}")
        soql = f"SELECT {', '.join([*wanted, 'SystemModstamp'])} FROM {obj.name}"
        if conditions:
            soql += " WHERE " + " AND ".join(conditions)
        stages = self._stage_table() if obj.table == "opportunities" else {}
        for row in self._pages(soql, counted=obj.name):
            values = {field: _field(row, fields[field]) for field in obj.fields}
            if obj.table == "opportunities":
                stage = stages.get(values.get("stage") or "", {})
                if values.get("probability") is None:
                    values["probability"] = stage.get("DefaultProbability")
                if values.get("forecast_category") is None:
                    values["forecast_category"] = stage.get("ForecastCategoryName")
                values["probability"] = _percent(values.get("probability"))
            owner = values.get("owner")
            if isinstance(owner, str) and owner.startswith(_QUEUE_PREFIX):
                values["owner"] = None
            yield Record(values, _parse_time(row.get("SystemModstamp")))

    def deleted(self, obj: SourceObject, since: datetime) -> Iterator[str]:
        if obj.name not in _DELETABLE:
            return
        soql = (
            f"SELECT Id FROM {obj.name} WHERE IsDeleted = true "
            f"AND SystemModstamp >= {_soql_time(since)}"
        )
        for row in self._pages(soql, include_deleted=True):
            yield str(row["Id"])

    def field_history(self, obj: SourceObject) -> Iterator[FieldChange]:
        """Opportunities' tracked changes from ``OpportunityFieldHistory`` (fields with
        history tracking on in the org; 18 to 24 months of them), one paged query."""
        if obj.name != "Opportunity":
            return
        wanted = ", ".join(f"'{name}'" for name in _HISTORY_FIELDS)
        soql = (
            "SELECT OpportunityId, Field, DataType, OldValue, NewValue, CreatedDate "
            f"FROM OpportunityFieldHistory WHERE Field IN ({wanted})"
        )
        for row in self._pages(soql):
            if row["Field"] == "Owner" and row["DataType"] != "EntityId":
                continue
            at = _parse_time(row["CreatedDate"])
            old, new = row["OldValue"], row["NewValue"]
            if row["Field"] == "Probability":
                old, new = _percent(old), _percent(new)
            if at is not None:
                yield FieldChange(
                    str(row["OpportunityId"]), _HISTORY_FIELDS[row["Field"]], old, new, at
                )

    def budget(self) -> Budget | None:
        usage = self._sf.api_usage.get("api-usage")
        if not isinstance(usage, Usage):
            return None
        return Budget(usage.used, usage.total, "API requests in 24 h")

    def close(self) -> None:
        self._session.close()
