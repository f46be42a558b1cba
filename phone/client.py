"""Talking to one hub: HTTPS pinned to the advertised certificate fingerprint, typed answers.

No certificate authority is involved on a health post's LAN: the phone connects without CA
validation and compares the SHA-256 of the DER certificate the hub presents with the `tls` value
of its zeroconf record; on a mismatch nothing is sent (`PinMismatch`). HTTP statuses become typed
errors (`phone.errors`): 401 `TokenRefused`, 403 `Forbidden`, 413 `TooLarge`, 507 `HubFull`,
other 5xx `HubBusy`; a broken connection is a `NetworkError` (retryable).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import urllib.parse
import uuid
from typing import Any, Self

from phone.errors import (
    Forbidden,
    HubBusy,
    HubFull,
    NetworkError,
    PinMismatch,
    ProtocolError,
    TokenRefused,
    TooLarge,
)

BULK_SYNC = "/api/v1/medical-records/bulk-sync"
HUB_INFO = "/api/v1/hub"
ENCOUNTERS = "/api/v1/encounters"
TRIAGE = "/api/v1/triage"
MAX_ANSWER = 64 * 1024 * 1024  # a bulk-sync answer for 1,000 records is well under 1 MiB


class HubClient:
    """Requests to one hub over one pinned TLS connection (reopened after a failure)."""

    def __init__(
        self, host: str, port: int, *, fingerprint: str, token: str, timeout_s: float = 30.0
    ) -> None:
        self.host = host
        self.port = port
        self.fingerprint = fingerprint.lower()
        self._token = token
        self._timeout = timeout_s
        self._conn: http.client.HTTPSConnection | None = None

    def hub_info(self) -> dict[str, Any]:
        """`GET /api/v1/hub`: the hub's identity, clock and capacity."""
        return self._json(self._request("GET", HUB_INFO, None))

    def bulk_sync(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`POST` the records; the hub's per-record results, checked to match what was sent."""
        body = json.dumps({"records": records}, separators=(",", ":")).encode()
        answer = self._json(self._request("POST", BULK_SYNC, body))
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(records):
            raise ProtocolError("the hub did not answer one result per record sent", status=200)
        for sent, result in zip(records, results, strict=True):
            if not isinstance(result, dict) or not _same_record(sent, result):
                raise ProtocolError("the hub's results are not in the order sent", status=200)
        return results

    def start_encounter(self, device_address: str, patient_id: str) -> str:
        """`POST /api/v1/encounters`: bind a device to the patient from the hub's now; its id.

        Readings the device takes meanwhile get the patient (and are triaged for them). 409 (the
        device is bound to someone else) raises `ProtocolError` with the hub's message.
        """
        body = json.dumps({"device_address": device_address, "patient_id": patient_id}).encode()
        answer = self._json(self._request("POST", ENCOUNTERS, body))
        encounter_id = answer.get("id")
        if not isinstance(encounter_id, str):
            raise ProtocolError("the hub's encounter has no id", status=201)
        return encounter_id

    def end_encounter(self, encounter_id: str) -> dict[str, Any]:
        """`DELETE /api/v1/encounters/{id}`: end the encounter at the hub's clock; the encounter."""
        return self._json(self._request("DELETE", f"{ENCOUNTERS}/{encounter_id}", None))

    def triage(
        self, patient_id: str, *, limit: int = 20, min_band: str | None = None
    ) -> list[dict[str, Any]]:
        """`GET /api/v1/triage`: the patient's latest triage results, newest first.

        Those of an agent's record are included (they may list no reading). `min_band` keeps
        that band and higher ones (`low`, `low_medium`, `medium`, `high`).
        """
        query: dict[str, str | int] = {"patient_id": patient_id, "limit": limit}
        if min_band is not None:
            query["min_band"] = min_band
        path = f"{TRIAGE}?{urllib.parse.urlencode(query)}"
        results = self._json(self._request("GET", path, None)).get("results")
        if not isinstance(results, list):
            raise ProtocolError("the hub's triage answer has no results", status=200)
        return results

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> http.client.HTTPSConnection:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # trust comes from the pinned fingerprint instead
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=context, timeout=self._timeout
        )
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NetworkError(f"cannot reach the hub at {self.host}:{self.port}: {exc}") from exc
        sock = conn.sock
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        got = hashlib.sha256(der).hexdigest() if der else ""
        if got != self.fingerprint:
            conn.close()
            raise PinMismatch(expected=self.fingerprint, got=got or "none")
        return conn

    def _request(  # noqa: C901 - one branch per documented status
        self, method: str, path: str, body: bytes | None
    ) -> tuple[int, bytes]:
        if self._conn is None:
            self._conn = self._connect()
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self._conn.request(method, path, body=body, headers=headers)
            response = self._conn.getresponse()
            data = response.read(MAX_ANSWER + 1)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            self.close()
            raise NetworkError(f"the connection to the hub broke: {exc!r}") from exc
        if response.will_close:
            self.close()
        status = response.status
        if 200 <= status < 300:  # noqa: PLR2004 - HTTP: 200, 201 (created) alike
            return status, data
        message = _message(data) or f"HTTP {status}"
        if status == 401:  # noqa: PLR2004 - HTTP
            raise TokenRefused(f"the hub refused the token: {message}")
        if status == 403:  # noqa: PLR2004 - HTTP
            raise Forbidden(f"the token may not do this: {message}", answer=_body(data, status))
        if status == 413:  # noqa: PLR2004 - HTTP
            raise TooLarge(message)
        if status == 507:  # noqa: PLR2004 - HTTP
            raise HubFull(f"the hub's storage is full: {message}")
        if status >= 500:  # noqa: PLR2004 - HTTP
            raise HubBusy(f"the hub failed: {message}", status=status)
        raise ProtocolError(f"the hub answered {status}: {message}", status=status)

    @staticmethod
    def _json(answer: tuple[int, bytes]) -> dict[str, Any]:
        _, data = answer
        if len(data) > MAX_ANSWER:
            raise ProtocolError("the hub's answer is too large")
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise ProtocolError(f"the hub's answer is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ProtocolError("the hub's answer is not a JSON object")
        return value


def _same_record(sent: dict[str, Any], result: dict[str, Any]) -> bool:
    """Whether `result` answers `sent` (the hub writes UUIDs in canonical form)."""
    rev = sent.get("revision")
    if result.get("revision") != (rev if isinstance(rev, int) else None):
        return False
    mine, theirs = sent.get("id"), result.get("id")
    if not isinstance(mine, str):
        return theirs is None
    if mine == theirs:
        return True
    try:
        return isinstance(theirs, str) and uuid.UUID(mine) == uuid.UUID(theirs)
    except ValueError:
        return False


def _body(data: bytes, status: int) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    out: dict[str, Any] = value if isinstance(value, dict) else {}
    return {"status": status, **out}


def _message(data: bytes) -> str | None:
    message = _body(data, 0).get("message")
    return message if isinstance(message, str) else None
