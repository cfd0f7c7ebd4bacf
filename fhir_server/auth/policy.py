"""Authorization decisions for one FHIR request: scopes → interactions, and which patients' data it may touch.

``await policy_for(svc)`` gives the :class:`Policy` of the current request (None when authorization is off or
the caller is the server itself: then everything is allowed). Interactions ask it for a :class:`Grant`:

* ``policy.grant(rtype, perm)`` — perm ``r`` (read, vread), ``s`` (search, history, compartment search),
  ``c`` (create; also an update that creates), ``u`` (update, patch), ``d`` (delete). No resource scope covers
  it → **403** (``forbidden``), recorded in the audit trail.
* ``Grant.patients``: ``None`` — any patient's data (``system/`` scopes, CARES staff ``user/`` scopes,
  auditors on AuditEvent); otherwise the ids of the patients whose compartments (R4 Patient
  CompartmentDefinition) the token may see: the launch patient for ``patient/`` scopes, the user's patients
  for ``user/`` scopes (``auth.visibility``); when scopes of several contexts cover the type, the union.
* Shared types (in no patient compartment: Practitioner, Organization, Location, Medication, Questionnaire,
  StructureDefinition, ValueSet, …) are readable and searchable by restricted tokens whose scopes name the type
  (or ``*``), except :data:`HIDDEN_SHARED` (Binary, Bundle, Device, … — types that can hold one patient's data
  without a compartment link), which restricted tokens never see. Restricted tokens may not *write* shared
  types (403).
* ``Grant.restrictions``: v2 query restrictions (``patient/Observation.rs?category=…``) of the covering
  scopes, OR-ed (None: some covering scope has none). A search gets them added as a criterion; a read of a
  resource that does not meet them is **404** (as a resource outside the compartment); a write whose result
  does not meet them is **403**.
* **AuditEvent**: never written through the API (403); read and searched only with a ``system/`` scope on it,
  or a ``user/`` scope of a user whose roles include ``auditor`` (then every AuditEvent; patient scopes and
  other users: 403).
* ``$reindex`` needs :meth:`Policy.require_admin`: a ``system/*`` scope with every permission (``cruds``).

Reads of resources outside the allowed compartments answer 404 (their existence is not revealed); writes
that would put data into (or change data of) another patient's compartment answer 403.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from fhir_server import audit as audit_trail
from fhir_server.audit import AuditRecord
from fhir_server.auth.access import Access, current
from fhir_server.auth.compartment import member_params, patients_of
from fhir_server.auth.visibility import user_roles, visible_patients
from fhir_server.outcome import FhirError
from fhir_server.search.model import Visibility

log = logging.getLogger("cares_fhir.audit")
__all__ = ["HIDDEN_SHARED", "Grant", "Policy", "policy_for"]

HIDDEN_SHARED = frozenset({"Binary", "Bundle", "Contract", "Device", "EnrollmentResponse", "GuidanceResponse",
                           "Linkage", "MessageHeader", "OperationOutcome", "PaymentNotice", "PaymentReconciliation",
                           "Subscription", "TestReport", "VerificationResult"})
_ACTION = {"c": "C", "r": "R", "s": "R", "u": "U", "d": "D"}
_NAMES = {"c": "create", "r": "read", "s": "search", "u": "update", "d": "delete"}
Restriction = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Grant:
    rtype: str
    perm: str
    patients: frozenset[str] | None = None  # None: every patient
    restrictions: tuple[Restriction, ...] | None = None  # None: no v2 query restriction
    shared: bool = False  # rtype is in no patient compartment

    @property
    def restricted(self) -> bool:
        return self.patients is not None

    def sees_patients(self, pats: frozenset[str] | None) -> bool:
        """Whether a resource in the compartments of ``pats`` (None: a shared resource) is visible."""
        if self.patients is None:
            return True
        if pats is None:
            return self.rtype not in HIDDEN_SHARED
        return bool(pats & self.patients)

    def may_write(self, pats: frozenset[str] | None) -> bool:
        """Whether a resource in the compartments of ``pats`` may be written (all of them must be allowed)."""
        if self.patients is None:
            return True
        return pats is not None and bool(pats) and pats <= self.patients


@dataclass
class Policy:
    svc: Any
    access: Access
    user_patients: frozenset[str] | None = None  # for user/ scopes (None: all, e.g. CARES staff)
    roles: frozenset[str] = frozenset()
    _grants: dict[tuple[str, str], Grant | None] = field(default_factory=dict)

    # -------------------------------------------------------------------------------- decisions
    def _compute(self, rtype: str, perm: str) -> Grant | None:
        scopes = self.access.scopes.matching(rtype, perm)
        shared = member_params(self.svc.registry, rtype) is None
        if rtype == "AuditEvent":
            if perm not in ("r", "s"):
                return None
            if any(s.context == "system" for s in scopes) or (
                    "auditor" in self.roles and any(s.context == "user" for s in scopes)):
                return Grant(rtype, perm, None, None, shared)
            return None
        if not scopes:
            return None
        patients: set[str] | None = set()
        for s in scopes:
            if s.context == "system":
                patients = None
            elif s.context == "user":
                if self.user_patients is None:
                    patients = None
                elif patients is not None:
                    patients |= self.user_patients
            elif patients is not None and self.access.patient:
                patients.add(self.access.patient)
        restrictions: tuple[Restriction, ...] | None = tuple(s.params for s in scopes)
        if any(not s.params for s in scopes):
            restrictions = None
        return Grant(rtype, perm, frozenset(patients) if patients is not None else None, restrictions, shared)

    def patients_for_contexts(self, perm: str) -> frozenset[str] | None:
        """The patients any scope with ``perm`` lets the token see (None: every patient)."""
        out: set[str] = set()
        for s in self.access.scopes.resource:
            if perm not in s.perms:
                continue
            if s.context == "system" or (s.context == "user" and self.user_patients is None):
                return None
            if s.context == "user" and self.user_patients is not None:
                out |= self.user_patients
            elif s.context == "patient" and self.access.patient:
                out.add(self.access.patient)
        return frozenset(out)

    def peek(self, rtype: str, perm: str) -> Grant | None:
        """The grant for ``perm`` on ``rtype``, or None when no scope covers it (no error, no audit)."""
        key = (rtype, perm)
        if key not in self._grants:
            self._grants[key] = self._compute(rtype, perm)
        return self._grants[key]

    async def grant(self, rtype: str, perm: str) -> Grant:
        """The grant for ``perm`` on ``rtype``; 403 (audited) when no scope covers it."""
        g = self.peek(rtype, perm)
        if g is None:
            if rtype == "AuditEvent" and perm in "cud":
                raise await self.deny(403, f"AuditEvent resources are read-only ({_NAMES[perm]} refused)",
                                      rtype, perm=perm)
            raise await self.deny(403, f"The token's scopes do not allow {_NAMES[perm]} on {rtype}", rtype,
                                  perm=perm)
        return g

    async def require_admin(self, what: str) -> None:
        """A ``system/*`` scope with every permission (``system/*.cruds``, v1 ``system/*.*``)."""
        if not any(s.context == "system" and s.rtype == "*" and s.perms >= frozenset("cruds") and not s.params
                   for s in self.access.scopes.resource):
            raise await self.deny(403, f"{what} needs system/*.cruds", None, perm="admin")

    def visibility(self, perm: str = "s", rtype: str | None = None) -> Visibility:
        """The compiler's view of what this token may find (``search.model.Visibility``): resources of ``rtype``
        (every type when None) as ``perm`` allows; the other types — what a chain or ``_has`` looks through — as
        search (``s``) allows."""
        if rtype is None or perm == "s":
            return Visibility(lambda t: self._sql_patients(t, perm), self.svc.registry)
        return Visibility(lambda t: self._sql_patients(t, perm if t == rtype else "s"), self.svc.registry)

    def _sql_patients(self, rtype: str, perm: str) -> tuple[str, ...] | None:
        g = self.peek(rtype, perm)
        if g is None:
            return ()
        if g.patients is None:
            return None
        if g.shared:
            return () if rtype in HIDDEN_SHARED else None
        return tuple(sorted(g.patients))

    # -------------------------------------------------------------------------------- checks
    def patients_of(self, resource: dict[str, Any]) -> frozenset[str] | None:
        return patients_of(self.svc.registry, resource, self.svc.base)

    async def check_patients(self, g: Grant, patients: frozenset[str] | None, rid: str) -> None:
        """404 (audited) when a resource in the compartments of ``patients`` is outside what ``g`` lets the token
        see."""
        if not g.sees_patients(patients):
            raise await self.deny(404, f"{g.rtype}/{rid[:64]} is not known", g.rtype, rid, perm=g.perm,
                                  code="not-found")

    async def check_write(self, g: Grant, resource: dict[str, Any], rid: str | None, *, existing: bool = False) -> None:
        """403 (audited) when writing ``resource`` (or, ``existing``, changing the stored one) would touch data
        outside the compartments ``g`` allows."""
        if not g.may_write(self.patients_of(resource)):
            what = "changes data of" if existing else "would put data into"
            raise await self.deny(403, f"This {g.rtype} {what} a patient compartment the token may not write to",
                                  g.rtype, rid, perm=g.perm)

    # -------------------------------------------------------------------------------- audit of denials
    async def deny(self, status: int, message: str, rtype: str | None, rid: str | None = None, *,
                   perm: str = "", code: str = "forbidden") -> FhirError:
        """The error to raise for a denial, after recording it (outcome 4)."""
        rec = AuditRecord(_ACTION.get(perm, "E"), "denied", "4", status, rtype, rid, access=self.access,
                          source=self.access.source, detail={"reason": code, "permission": perm})
        try:
            await audit_trail.record(self.svc, rec)
        except Exception:  # noqa: BLE001 - the denial stands; the audit failure is logged
            log.exception("audit record of a denial failed")
        return FhirError.of(status, code, message)


async def policy_for(svc: Any) -> Policy | None:
    """The policy of the current request (None: authorization off or an internal caller)."""
    access = current()
    if access is None:
        return None
    cached = access.extra.get("policy")
    if isinstance(cached, Policy):
        return cached
    pol = Policy(svc, access)
    if "user" in access.scopes.contexts():
        pol.user_patients = await visible_patients(svc, access)
        pol.roles = await user_roles(svc, access)
    access.extra["policy"] = pol
    return pol
