"""``$validate`` (FHIR R4 resource-operation-validate.html) at type and instance level.

``POST [base]/[type]/$validate`` with the resource itself, or with ``Parameters`` carrying ``resource``,
``profile`` and ``mode`` (create | update | delete); ``POST``/``GET [base]/[type]/[id]/$validate``
validates the stored resource (or the given one against that id). The answer is always 200 with an
OperationOutcome listing what the validator found (an "All OK" information issue when nothing) —
validation failures are not HTTP errors; malformed requests are (400).
"""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server.interactions import profile_checks
from fhir_server.interactions.checks import known_type
from fhir_server.interactions.operations import OperationCall, register
from fhir_server.interactions.request import Result
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError, Issue, operation_outcome

_MODES = ("create", "update", "delete")


def _input_resource(call: OperationCall) -> dict[str, Any] | None:
    """The resource to validate: the posted resource itself, or the ``resource`` parameter of a posted
    Parameters (an empty Parameters posted to ``Parameters/$validate`` is itself the resource)."""
    body = call.ix.body
    if not isinstance(body, dict):
        return None
    if body.get("resourceType") not in (None, "Parameters"):
        return body
    if body.get("resourceType") == "Parameters" and call.rtype == "Parameters" and not call.parameters:
        return body
    return call.resource("resource")


@register("validate", type_level=True, instance=True)
async def validate(svc: Services, call: OperationCall) -> Result:
    rtype = known_type(call.rtype or "")
    mode = call.get("mode")
    if mode is not None and mode not in _MODES:
        raise FhirError.of(400, "invalid", f"$validate mode must be one of {', '.join(_MODES)}, not '{str(mode)[:20]}'")
    profile = call.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise FhirError.of(400, "invalid", "$validate profile must be a canonical URL")
    resource = _input_resource(call)
    stored = await svc.repo.read(rtype, call.rid) if call.rid is not None else None
    if call.rid is not None and (stored is None or stored.deleted) and mode != "create":
        raise FhirError.of(404, "not-found", f"{rtype}/{call.rid[:64]} is not known")
    if mode == "delete":
        # nothing on this server forbids deleting a resource (referential integrity is not enforced)
        return Result(200, resource=operation_outcome([]))
    if resource is None:
        if stored is None:
            raise FhirError.of(400, "invalid", "$validate needs a resource: POST it, or a Parameters with 'resource'")
        resource = orjson.loads(stored.body or "{}")
    if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
        got = resource.get("resourceType") if isinstance(resource, dict) else None
        raise FhirError.of(400, "invalid", f"$validate on {rtype} got a {str(got)[:64]} resource")
    issues: list[Issue] = []
    if mode == "update":
        if call.rid is not None and resource.get("id") != call.rid:
            issues.append(Issue("error", "invalid", f"For an update the resource id must be {call.rid}",
                                (f"{rtype}.id",)))
        elif call.rid is None and not resource.get("id"):
            issues.append(Issue("error", "required", "For an update the resource must have an id", (f"{rtype}.id",)))
    issues += await profile_checks.validation_issues(svc, resource,
                                                   extra_profiles=[profile] if profile else [])
    return Result(200, resource=operation_outcome(issues))
