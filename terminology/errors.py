"""The one exception the terminology engine raises, carrying what an HTTP answer needs."""

from __future__ import annotations


class TerminologyError(Exception):
    """A request the engine cannot answer: ``status`` (HTTP), ``code`` (an OperationOutcome IssueType)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(message: str) -> TerminologyError:
    return TerminologyError(404, "not-found", message)


def invalid(message: str) -> TerminologyError:
    return TerminologyError(400, "invalid", message)


def unprocessable(message: str, code: str = "processing") -> TerminologyError:
    return TerminologyError(422, code, message)


def not_present_message(system: str) -> str:
    return f"code system {system} is not available on this server"
