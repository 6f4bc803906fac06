"""A fake Salesforce REST API (and its SOAP login) that behaves like the documented one for what
kpibot sends, on 127.0.0.1, port 0.

- ``POST /services/Soap/u/<version>``: the partner ``login`` call; answers the ``sessionId`` and
  a ``serverUrl`` on the org's instance, or an ``INVALID_LOGIN`` SOAP fault.
- ``POST /services/oauth2/token`` with ``grant_type=client_credentials`` and the connected app's
  key and secret in Basic auth: an ``access_token`` and ``instance_url``, or ``invalid_client``.
- ``GET /services/data/v<version>/query?q=`` and ``/queryAll?q=``: SOQL ``SELECT f, g.h FROM
  Object [WHERE a >= 2026-11-30T10:00:00Z AND b = true AND c = 'x']``. Records carry
  ``attributes``; relationship fields are nested objects or null; numbers are JSON numbers;
  date-times are written ``2026-11-30T10:00:00.000+0000``. ``query`` leaves deleted records out,
  ``queryAll`` keeps them. An object the user may not see (``hidden``) is HTTP 400
  ``INVALID_TYPE``. Results come in batches of ``Sforce-Query-Options: batchSize`` (200 to
  2000, default 2000) with ``done``, ``totalSize`` and ``nextRecordsUrl``
  (``/services/data/v<version>/query/01g…-<offset>``). An unknown field is HTTP 400
  ``INVALID_FIELD``.
- ``OpportunityFieldHistory`` (``SELECT … WHERE Field IN ('StageName', …)``): one row per
  change of a tracked field, with ``OpportunityId``, ``Field``, ``DataType``, ``OldValue`` and
  ``NewValue`` (JSON numbers for amounts and percentages, ``YYYY-MM-DD`` text for dates, null
  for an empty value) and ``CreatedDate``. A change of owner is two rows with ``Field`` "Owner":
  one with the users' names (``DataType`` "Text") and one with their ids ("EntityId").
- ``GET /services/data/v<version>/sobjects/<Object>/describe``: the object's ``fields``, which
  are the fields its records have (``CurrencyIsoCode`` only in a multi-currency org).
- Every API answer carries ``Sforce-Limit-Info: api-usage=<used>/<limit>``; past the limit the
  answer is HTTP 403 ``REQUEST_LIMIT_EXCEEDED`` ("TotalRequests Limit exceeded."). A token that
  is not the current session's gets HTTP 401 ``INVALID_SESSION_ID``.

Errors are JSON lists ``[{"message": …, "errorCode": …}]``, as Salesforce writes them.
"""

from __future__ import annotations

import base64
import itertools
import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from tests.fakes.http_fake import FakeServer, Request, Response

INSTANCE = "fake.my.salesforce.com"
USERNAME = "ops@example.test"
PASSWORD = "hunter2"
SECURITY_TOKEN = "TOKEN42"
CONSUMER_KEY = "3MVG9-key"
CONSUMER_SECRET = "consumer-secret"

_SELECT = re.compile(r"SELECT (?P<fields>.+?) FROM (?P<object>\w+)(?: WHERE (?P<where>.+))?$")
_CONDITION = re.compile(
    r"(?P<field>\w+) (?P<op>>=|=|IN) "
    r"(?P<value>'[^']*'|true|false|\d{4}-\d\d-\d\dT[\d:]+Z|\('[^)]*'\))"
)
# The fields of objects whose records a test may leave empty (others: their records' keys).
_SCHEMAS = {
    "OpportunityFieldHistory": {
        "Id",
        "OpportunityId",
        "Field",
        "DataType",
        "OldValue",
        "NewValue",
        "CreatedDate",
        "CreatedById",
        "IsDeleted",
    },
}
_HISTORY_TYPES = {
    "StageName": "DynamicEnum",
    "Amount": "Currency",
    "CloseDate": "Date",
    "Probability": "Percent",
    "ForecastCategoryName": "StaticEnum",
}


def sf_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, [{"message": message, "errorCode": code}])


class FakeSalesforce(FakeServer):
    def __init__(self, api_limit: int = 15_000, api_used: int = 0) -> None:
        super().__init__()
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.api_limit = api_limit
        self.api_used = api_used
        self.session_id = "00DFAKE!session-1"
        self.logins = 0
        self._sessions = itertools.count(2)
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._cursor_ids = itertools.count(1)
        self._history_ids = itertools.count(1)
        self.hidden: set[str] = set()  # objects the integration user has no access to

    # --- test controls -------------------------------------------------------------------------

    def put(self, sobject: str, record: dict[str, Any]) -> None:
        """Create or replace a record (``IsDeleted`` defaults to false)."""
        self.records.setdefault(sobject, {})[record["Id"]] = {"IsDeleted": False, **record}

    def change(
        self, opportunity: str, field: str, old: Any, new: Any, at: datetime,
        names: tuple[str, str] | None = None,
    ) -> None:  # fmt: skip
        """Record a change of a tracked field as OpportunityFieldHistory does (an owner change:
        the users' ``names`` row, then the ids row)."""
        rows = [("Text", *names), ("EntityId", old, new)] if field == "Owner" and names else [
            (_HISTORY_TYPES.get(field, "EntityId" if field == "Owner" else "Text"), old, new)
        ]  # fmt: skip
        for data_type, before, after in rows:
            self.put("OpportunityFieldHistory", {
                "Id": f"017{next(self._history_ids):012d}", "OpportunityId": opportunity,
                "Field": field, "DataType": data_type, "OldValue": before, "NewValue": after,
                "CreatedDate": sf_time(at), "CreatedById": "005A",
            })  # fmt: skip

    def expire_session(self) -> None:
        self.session_id = f"00DFAKE!session-{next(self._sessions)}"

    @property
    def api_calls(self) -> list[Request]:
        return [r for r in self.requests if r.path.startswith("/services/data/")]

    # --- the API ---------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/services/Soap/u/"):
            return self._login(request)
        if request.path == "/services/oauth2/token":
            return self._client_credentials(request)
        if request.headers.get("authorization") != f"Bearer {self.session_id}":
            return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        self.api_used += 1
        if self.api_used > self.api_limit:
            response = _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        else:
            response = self._api(request)
        response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_used}/{self.api_limit}"
        return response

    def _login(self, request: Request) -> Response:
        body = request.body.decode()
        username = re.search(r"<n1:username>(.*?)</n1:username>", body)
        password = re.search(r"<n1:password>(.*?)</n1:password>", body)
        if (username and username.group(1)) != USERNAME or (
            password and password.group(1)
        ) != escape(PASSWORD + SECURITY_TOKEN):
            fault = (
                '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>'
                "<faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid "
                "username, password, security token; or user locked out.</faultstring><detail>"
                "<sf:LoginFault><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>"
                "<sf:exceptionMessage>Invalid username, password, security token; or user "
                "locked out.</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>"
                "</soapenv:Body></soapenv:Envelope>"
            )
            return Response(500, fault.encode())
        self.logins += 1
        self.expire_session()
        ok = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result>'
            f"<serverUrl>https://{INSTANCE}/services/Soap/u/62.0/00DFAKE</serverUrl>"
            f"<sessionId>{self.session_id}</sessionId><userId>005FAKE</userId>"
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )
        return Response(200, ok.encode())

    def _client_credentials(self, request: Request) -> Response:
        form = parse_qs(request.body.decode())
        basic = base64.b64encode(f"{CONSUMER_KEY}:{CONSUMER_SECRET}".encode()).decode()
        if (
            form.get("grant_type") != ["client_credentials"]
            or request.headers.get("authorization") != f"Basic {basic}"
        ):
            return Response(400, {"error": "invalid_client",
                                  "error_description": "invalid client credentials"})  # fmt: skip
        self.logins += 1
        self.expire_session()
        return Response(200, {
            "access_token": self.session_id, "instance_url": f"https://{INSTANCE}",
            "id": "https://login.salesforce.com/id/00DFAKE/005FAKE", "token_type": "Bearer",
            "issued_at": "1764576000000", "signature": "fake",
        })  # fmt: skip

    def _api(self, request: Request) -> Response:
        described = re.fullmatch(r"/services/data/v[\d.]+/sobjects/(\w+)/describe/?", request.path)
        if described is not None and request.method == "GET":
            return self._describe(described.group(1))
        match = re.fullmatch(r"/services/data/v[\d.]+/(queryAll|query)/?(.*)", request.path)
        if match is None or request.method != "GET":
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        resource, locator = match.groups()
        batch = self._batch_size(request)
        if locator:
            rows = self._cursors.pop(locator.rsplit("-", 1)[0], None)
            if rows is None:
                return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return self._page(rows, int(locator.rsplit("-", 1)[1]), batch)
        soql = request.param("q") or ""
        parsed = _SELECT.fullmatch(soql.strip())
        if parsed is None:
            return _error(400, "MALFORMED_QUERY", f"unexpected query: {soql}")
        sobject = parsed["object"]
        if sobject in self.hidden:
            return _error(
                400, "INVALID_TYPE",
                f"sObject type '{sobject}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
            )  # fmt: skip
        fields = [f.strip() for f in parsed["fields"].split(",")]
        table = self.records.get(sobject, {})
        known = set().union(_SCHEMAS.get(sobject, set()), *(r.keys() for r in table.values()))
        for name in fields:
            if name.split(".")[0] not in known:
                return _error(
                    400, "INVALID_FIELD",
                    f"No such column '{name}' on entity '{sobject}'. If you are attempting to "
                    "use a custom field, be sure to append the '__c' after the custom field name.",
                )  # fmt: skip
        rows = [r for _id, r in sorted(table.items())]
        if resource == "query":
            rows = [r for r in rows if not r["IsDeleted"]]
        for condition in (parsed["where"] or "").split(" AND "):
            if condition:
                rows = self._filter(rows, condition)
        records = [self._shape(sobject, row, fields) for row in rows]
        return self._page(records, 0, batch)

    def _describe(self, sobject: str) -> Response:
        table = self.records.get(sobject)
        if table is None:
            return _error(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        names = sorted(set().union(*(r.keys() for r in table.values())) - {"attributes"})
        fields = [{"name": name, "label": name, "type": "string"} for name in names]
        return Response(200, {"name": sobject, "label": sobject, "fields": fields})

    @staticmethod
    def _batch_size(request: Request) -> int:
        options = request.headers.get("sforce-query-options", "")
        found = re.search(r"batchSize=(\d+)", options)
        return max(200, min(2000, int(found.group(1)))) if found else 2000

    def _filter(self, rows: list[dict[str, Any]], condition: str) -> list[dict[str, Any]]:
        match = _CONDITION.fullmatch(condition.strip())
        assert match is not None, f"the fake does not understand {condition!r}"
        name, op, raw = match.groups()
        if op == "IN":
            values = {value.strip().strip("'") for value in raw.strip("()").split(",")}
            return [r for r in rows if r.get(name) in values]
        if raw in ("true", "false"):
            return [r for r in rows if r.get(name) is (raw == "true")]
        if raw.startswith("'"):
            return [r for r in rows if r.get(name) == raw.strip("'")]
        since = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").strftime("%Y-%m-%dT%H:%M:%S")
        assert op == ">="
        return [r for r in rows if (r.get(name) or "")[:19] >= since]

    @staticmethod
    def _shape(sobject: str, row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": sobject,
                "url": f"/services/data/v62.0/sobjects/{sobject}/{row['Id']}",
            }
        }
        for name in fields:
            top = name.split(".")[0]
            out[top] = row.get(top)
        return out

    def _page(self, records: list[dict[str, Any]], offset: int, batch: int) -> Response:
        end = offset + batch
        body: dict[str, Any] = {
            "totalSize": len(records), "done": end >= len(records),
            "records": records[offset:end],
        }  # fmt: skip
        if end < len(records):
            cursor = f"01gFAKE{next(self._cursor_ids):08d}"
            self._cursors[cursor] = records
            body["nextRecordsUrl"] = f"/services/data/v62.0/query/{cursor}-{end}"
        return Response(200, body)
