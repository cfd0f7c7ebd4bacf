"""EHR launch contexts (table ``oauth_launch``): an EHR (a client whose token has ``system/launch``, or the CLI)
stores the context — patient, encounter, fhirUser, intent, fhirContext, … — and gets an opaque ``launch`` value
for the app; the authorize endpoint resolves it. Only the SHA-256 hash of the value is stored; a launch value
expires after ``settings.launch_seconds``."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.storage.db import Database

__all__ = ["Launch", "create", "resolve"]

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_REF = re.compile(r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$")
_EXTRAS = ("intent", "smart_style_url", "need_patient_banner", "fhirContext", "tenant")
#: the launch context parameters a token response (and its introspection) carries besides patient / encounter
CONTEXT_PARAMETERS = frozenset(_EXTRAS)


@dataclass(frozen=True)
class Launch:
    patient: str | None
    encounter: str | None
    fhir_user: str | None
    context: dict[str, Any]


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _bare_id(value: Any, rtype: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{rtype} must be a string")
    if value.startswith(rtype + "/"):
        value = value[len(rtype) + 1:]
    if not _ID.match(value):
        raise ValueError(f"invalid {rtype} id")
    return value


def validate(body: dict[str, Any]) -> Launch:
    """A launch context from a JSON body (``patient``, ``encounter``, ``fhirUser``, ``intent``, ``fhirContext``, …);
    ValueError with a message when malformed."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    fhir_user = body.get("fhirUser")
    if fhir_user is not None and (not isinstance(fhir_user, str) or not _REF.match(fhir_user)):
        raise ValueError("fhirUser must be a relative reference such as Practitioner/1")
    ctx: dict[str, Any] = {k: body[k] for k in _EXTRAS if body.get(k) is not None}
    if "fhirContext" in ctx:
        _check_fhir_context(ctx["fhirContext"])
    if "need_patient_banner" in ctx and not isinstance(ctx["need_patient_banner"], bool):
        raise ValueError("need_patient_banner must be a boolean")
    for k in ("intent", "smart_style_url", "tenant"):
        if k in ctx and not isinstance(ctx[k], str):
            raise ValueError(f"{k} must be a string")
    return Launch(_bare_id(body.get("patient"), "Patient"), _bare_id(body.get("encounter"), "Encounter"),
                  fhir_user, ctx)


def _check_fhir_context(items: Any) -> None:
    """SMART App Launch 2.x (scopes-and-launch-context.html, fhirContext): an array of objects, each with a relative
    ``reference`` (``Type/id``), a ``canonical`` or an ``identifier``, and optionally ``type`` and ``role``
    (strings)."""
    if not isinstance(items, list):
        raise ValueError("fhirContext must be an array")
    for n, item in enumerate(items):
        where = f"fhirContext[{n}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be an object with reference, canonical or identifier")
        if not any(k in item for k in ("reference", "canonical", "identifier")):
            raise ValueError(f"{where} needs reference, canonical or identifier")
        if "reference" in item and (not isinstance(item["reference"], str) or not _REF.match(item["reference"])):
            raise ValueError(f"{where}.reference must be a relative reference such as CarePlan/1")
        if "canonical" in item and (not isinstance(item["canonical"], str) or not item["canonical"]):
            raise ValueError(f"{where}.canonical must be a non-empty string")
        if "identifier" in item and not isinstance(item["identifier"], dict):
            raise ValueError(f"{where}.identifier must be an Identifier object")
        for k in ("type", "role"):
            if k in item and not isinstance(item[k], str):
                raise ValueError(f"{where}.{k} must be a string")
        if "identifier" in item and not any(isinstance(item["identifier"].get(k), str) for k in ("system", "value")):
            raise ValueError(f"{where}.identifier needs a system or value")
        kind = item.get("type") or str(item.get("reference", "")).partition("/")[0]
        if kind in ("Patient", "Encounter") and not item.get("role"):
            # SMART 2.2: the launch Patient / Encounter are the patient / encounter parameters; in fhirContext
            # they appear only with a role other than the launch one
            raise ValueError(f"{where}: a {kind} in fhirContext needs a role (the launch {kind.lower()} is the "
                             f"{kind.lower()} parameter)")
        unknown = set(item) - {"reference", "canonical", "identifier", "type", "role"}
        if unknown:
            raise ValueError(f"{where} has unknown member(s) {', '.join(sorted(unknown))}")


async def create(db: Database, launch: Launch, *, ttl_seconds: int, created_by: str | None = None) -> str:
    """Store ``launch``; the opaque ``launch`` value (returned once)."""
    value = secrets.token_urlsafe(24)
    now = time.time_ns() // 1000
    async with db.write() as c:
        await c.run("INSERT INTO oauth_launch (launch_hash, patient, encounter, fhir_user, context, created_by, "
                    "created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (_hash(value), launch.patient, launch.encounter, launch.fhir_user,
                     orjson.dumps(launch.context).decode(), created_by, now, now + ttl_seconds * 1_000_000))
    return value


async def resolve(db: Database, value: str) -> Launch | None:
    """The unexpired launch context of ``value`` (None when unknown or expired)."""
    if not value or len(value) > 256:
        return None
    async with db.read() as c:
        row = await c.one("SELECT patient, encounter, fhir_user, context, expires_at FROM oauth_launch "
                          "WHERE launch_hash = %s", (_hash(value),))
    if row is None or int(row[4]) <= time.time_ns() // 1000:
        return None
    return Launch(row[0], row[1], row[2], orjson.loads(row[3]) if row[3] else {})
