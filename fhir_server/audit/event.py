"""``AuditRecord`` → a FHIR R4 ``AuditEvent`` (a JSON dict that validates against base R4).

What the event says, and the codes chosen (all from the code systems R4 binds AuditEvent to; nothing invented
except the client-id identifier system):

* FHIR REST interactions (read, vread, search, history, create, update, patch, delete, transaction, batch,
  operations): ``type`` = ``audit-event-type|rest`` (Restful Operation), ``subtype`` =
  ``restful-interaction|<code>``. Our interaction names map onto the R4 codes: ``search-compartment`` → ``search``
  (R4 has no compartment code), ``*-conditional`` → the plain interaction, ``operation-<name>`` → ``operation``
  (the operation's name goes into an entity ``name``: it is not PHI).
* Denials of a FHIR request (``denied``): the same ``rest`` type with the subtype of the permission that was
  refused (``r`` read, ``s`` search-type, ``c`` create, ``u`` update, ``d`` delete) and outcome 4. A request
  refused before a caller is known (401: no or bad bearer token) has no subtype — we do not know what it tried.
* Logins (``login``/``login-failed``/``logout``): ``type`` = DICOM ``DCM|110114`` User Authentication, ``subtype``
  ``DCM|110122`` Login / ``DCM|110123`` Logout; failed logins have outcome 4.
* Token issue and denial at the token endpoint (``token``/``token-denied``): ``DCM|110114`` User Authentication
  with subtype ``urn:ihe:event-type-code|ITI-71`` "Get Access Token" — the IHE IUA transaction, as used by the IHE
  Basic Audit Log Patterns profile ``IHE.IUA.71``; denials have outcome 4. Introspection (``introspect``) uses
  the IUA subtype ``ITI-102`` "Introspect Token"; revocation (``revoke``) ``DCM|110123`` Logout — neither DICOM
  nor IHE has a revocation code, and revoking a token ends the app's session the way a logout does.
  Authorization-endpoint decisions (``authorize``/``authorize-denied``) use ``DCM|110114`` with subtype
  ``DCM|110122`` Login: they are the interactive user-authorization step of the grant.
* Anything else: ``DCM|110113`` Security Alert without subtype (so an unforeseen event is still recorded).

``action`` is the record's C/R/U/D/E; ``outcome`` 0/4/8 (a ``*-failed``/``*-denied``/``denied`` event is at least
4); ``outcomeDesc`` only for failures, built from the HTTP status and the record's *reason/permission/error codes*
(never free text, never PHI).

``agent``: the signed-in user (``who`` = its fhirUser reference, ``altId`` = username, ``requestor`` true, the
network address, type ``extra-security-role-type|humanuser``) and the client application (``who.identifier`` =
client_id in ``http://cares-fhir.org/fhir/oauth-client``, type ``DCM|110150`` Application, ``requestor`` false;
``policy`` = ``urn:cares-fhir:token:<id>``, the non-secret hash prefix of the token, so the events of one grant
can be correlated — never the token). Without a user (backend services) the client is the requestor and carries
the network address; without either (401) an anonymous requestor with only the address.

``source.observer`` = this server (display "CARES FHIR", type ``security-source-type|4`` Application Server).

``entity``: the resource (``what`` = ``Type/id``, type ``resource-types|<Type>``, role ``object-role|4`` Domain
Resource), the query of searches/history/operations (``query`` = base64 of the query string, role 24 Query), one
entity per patient concerned (``Patient/<id>``, role 1 Patient; a Patient resource that is itself concerned is
one entity with role 1). Never the resource's content.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import TYPE_CHECKING, Any

from fhir_server.indexing.dates import format_instant
from fhir_server.storage.repository import now_us

if TYPE_CHECKING:
    from fhir_server.audit import AuditRecord

__all__ = ["CLIENT_SYSTEM", "build"]

CLIENT_SYSTEM = "http://cares-fhir.org/fhir/oauth-client"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_IHE = "urn:ihe:event-type-code"
_REST_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
              "display": "Restful Operation"}
_USER_AUTH = {"system": _DCM, "code": "110114", "display": "User Authentication"}
_SECURITY_ALERT = {"system": _DCM, "code": "110113", "display": "Security Alert"}
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_REST_CODES = frozenset({"read", "vread", "update", "patch", "delete", "history", "history-instance", "history-type",
                         "history-system", "create", "search", "search-type", "search-system", "capabilities",
                         "transaction", "batch", "operation"})
_ALIASES = {"search-compartment": "search", "bundle": "batch"}
_DENIED_PERMISSION = {"r": "read", "s": "search-type", "c": "create", "u": "update", "d": "delete"}
_AUTH_SUBTYPES: dict[str, dict[str, str]] = {
    "login": {"system": _DCM, "code": "110122", "display": "Login"},
    "logout": {"system": _DCM, "code": "110123", "display": "Logout"},
    "authorize": {"system": _DCM, "code": "110122", "display": "Login"},
    "token": {"system": _IHE, "code": "ITI-71", "display": "Get Access Token"},
    "revoke": {"system": _DCM, "code": "110123", "display": "Logout"},
    "introspect": {"system": _IHE, "code": "ITI-102", "display": "Introspect Token"},
}
_OBSERVER_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                  "display": "Application Server"}
_HUMAN_USER = {"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "humanuser",
               "display": "human user"}
_APPLICATION = {"system": _DCM, "code": "110150", "display": "Application"}
_DESC_KEYS = ("reason", "error", "permission")  # detail keys whose (code) values may appear in outcomeDesc
_ACTIONS = frozenset("CRUDE")
_OUTCOMES = frozenset({"0", "4", "8", "12"})


def _failure(interaction: str) -> bool:
    return interaction == "denied" or interaction.endswith(("-failed", "-denied"))


def _auth_base(interaction: str) -> str:
    for suffix in ("-failed", "-denied"):
        if interaction.endswith(suffix):
            return interaction[: -len(suffix)]
    return interaction


def _type_and_subtype(rec: AuditRecord) -> tuple[dict[str, str], list[dict[str, str]]]:
    name = rec.interaction
    if name == "denied":
        perm = str(rec.detail.get("permission") or "")
        if rec.access is None and rec.client_id is None:
            return _REST_TYPE, []
        code = _DENIED_PERMISSION.get(perm[:1])
        return _REST_TYPE, [{"system": _INTERACTION, "code": code}] if code else []
    base = name.removesuffix("-conditional")
    base = _ALIASES.get(base, base)
    if base.startswith("operation"):
        base = "operation"
    if base in _REST_CODES:
        return _REST_TYPE, [{"system": _INTERACTION, "code": base}]
    auth = _AUTH_SUBTYPES.get(_auth_base(name))
    if auth is not None:
        return _USER_AUTH, [auth]
    return _SECURITY_ALERT, []


def _network(address: str | None) -> dict[str, str] | None:
    if not address:
        return None
    try:
        ipaddress.ip_address(address)
        kind = "2"  # IP address
    except ValueError:
        kind = "1"  # machine name
    return {"address": address[:255], "type": kind}


def _agents(rec: AuditRecord) -> list[dict[str, Any]]:
    access = rec.access
    client_id = access.client_id if access is not None else rec.client_id
    username = access.username if access is not None and access.username else rec.username
    fhir_user = access.fhir_user if access is not None and access.fhir_user else rec.fhir_user
    source = rec.source or (access.source if access is not None else None)
    network = _network(source)
    agents: list[dict[str, Any]] = []
    has_user = bool(username or fhir_user)
    if has_user:
        user: dict[str, Any] = {"type": {"coding": [_HUMAN_USER]}}
        if fhir_user:
            user["who"] = {"reference": fhir_user}
        elif username:
            user["who"] = {"display": username}
        if username:
            user["altId"] = username
        user["requestor"] = True
        if network:
            user["network"] = network
        agents.append(user)
    if client_id:
        client: dict[str, Any] = {"type": {"coding": [_APPLICATION]},
                                  "who": {"identifier": {"system": CLIENT_SYSTEM, "value": client_id},
                                          "display": client_id},
                                  "requestor": not has_user}
        if access is not None and access.token_id:
            client["policy"] = [f"urn:cares-fhir:token:{access.token_id}"]
        if not has_user and network:
            client["network"] = network
        agents.append(client)
    if not agents:
        anonymous: dict[str, Any] = {"who": {"display": "unauthenticated client"}, "requestor": True}
        if network:
            anonymous["network"] = network
        agents.append(anonymous)
    return agents


def _entities(rec: AuditRecord) -> list[dict[str, Any]]:
    patients = list(dict.fromkeys(p for p in rec.patients if p))
    entities: list[dict[str, Any]] = []
    if rec.rtype and rec.rid:
        is_patient = rec.rtype == "Patient" and rec.rid in patients
        entities.append({"what": {"reference": f"{rec.rtype}/{rec.rid}"},
                         "type": {"system": _RESOURCE_TYPES, "code": rec.rtype},
                         "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"} if is_patient
                         else {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"}})
        if is_patient:
            patients.remove(rec.rid)
    if rec.query is not None and (rec.query or rec.interaction.startswith("search")):
        query: dict[str, Any] = {"type": {"system": _RESOURCE_TYPES, "code": rec.rtype} if rec.rtype and not rec.rid
                                 else {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
                                 "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"}}
        if rec.query:  # a search without parameters: the entity names the searched type, with no query
            query["query"] = base64.b64encode(rec.query.encode()).decode()
        entities.append(query)
    elif rec.rtype and not rec.rid:
        entities.append({"type": {"system": _RESOURCE_TYPES, "code": rec.rtype},
                         "role": {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"}})
    if rec.interaction.startswith("operation-"):
        entities.append({"type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
                         "name": "$" + rec.interaction.removeprefix("operation-").lstrip("$")[:64]})
    for pid in patients:
        entities.append({"what": {"reference": f"Patient/{pid}"},
                         "type": {"system": _RESOURCE_TYPES, "code": "Patient"},
                         "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"}})
    return entities


def _outcome(rec: AuditRecord) -> str:
    outcome = rec.outcome if rec.outcome in _OUTCOMES else "8"
    if outcome == "0" and (_failure(rec.interaction) or rec.status >= 400):
        return "8" if rec.status >= 500 else "4"
    return outcome


def _outcome_desc(rec: AuditRecord) -> str:
    parts = [f"HTTP {rec.status}"] if rec.status else []
    for key in _DESC_KEYS:
        value = rec.detail.get(key)
        if isinstance(value, str) and value and len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum():
            parts.append(f"{key} {value}")
    return ", ".join(parts) or "failure"


def build(rec: AuditRecord, *, when_us: int | None = None) -> dict[str, Any]:
    """The AuditEvent (without id/meta: the repository adds them) that records ``rec``."""
    typ, subtypes = _type_and_subtype(rec)
    event: dict[str, Any] = {"resourceType": "AuditEvent", "type": typ}
    if subtypes:
        event["subtype"] = subtypes
    event["action"] = rec.action if rec.action in _ACTIONS else "E"
    event["recorded"] = format_instant(now_us() if when_us is None else when_us)
    outcome = _outcome(rec)
    event["outcome"] = outcome
    if outcome != "0":
        event["outcomeDesc"] = _outcome_desc(rec)
    event["agent"] = _agents(rec)
    event["source"] = {"observer": {"display": "CARES FHIR"}, "type": [_OBSERVER_TYPE]}
    entities = _entities(rec)
    if entities:
        event["entity"] = entities
    return event
