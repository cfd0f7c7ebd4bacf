"""OperationOutcome: the one place that builds them, and the exception every layer raises.

``FhirError`` carries an HTTP status and one or more issues; the HTTP layer turns it into an
OperationOutcome response. Nothing below the HTTP layer knows about HTTP beyond the status number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    severity: str  # fatal | error | warning | information
    code: str  # an IssueType code: invalid, structure, required, value, not-found, conflict, ...
    diagnostics: str
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = list(self.expression)
        return out


def operation_outcome(issues: list[Issue] | tuple[Issue, ...]) -> dict[str, Any]:
    """An OperationOutcome resource for these issues (an 'all ok' information issue when empty)."""
    if not issues:
        issues = (Issue("information", "informational", "All OK"),)
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


@dataclass
class FhirError(Exception):
    """An error that ends the current interaction with ``status`` and an OperationOutcome."""

    status: int
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, status: int, code: str, diagnostics: str, *expression: str,
           headers: dict[str, str] | None = None) -> FhirError:
        return cls(status, [Issue("error", code, diagnostics, tuple(expression))], headers or {})

    def __str__(self) -> str:
        return f"{self.status}: " + "; ".join(i.diagnostics for i in self.issues)

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)
