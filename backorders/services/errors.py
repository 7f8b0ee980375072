"""Business refusals, each with a stable code, a message for a person, and the field at
fault, so the API can answer 4xx that say exactly what was wrong."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 409

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NotFound(DomainError):
    status_code = 404


def unknown_order(order_id: object) -> NotFound:
    """The one answer for an order that is not there, or not the caller's to see."""
    return NotFound("unknown_order", f"no order {order_id}", field="order_id")


def unknown_line(line_id: object) -> NotFound:
    """The one answer for a line that is not there, or not the caller's to see."""
    return NotFound("unknown_line", f"no order line {line_id}", field="line_id")


class Conflict(DomainError):
    status_code = 409


class Invalid(DomainError):
    status_code = 422


class Forbidden(DomainError):
    status_code = 403


class Unauthorized(DomainError):
    """No credentials, or credentials that prove nothing: the same answer for a missing,
    unknown or revoked key, so the answer never tells whether a key exists."""

    status_code = 401


class TooManyRequests(DomainError):
    status_code = 429

    def __init__(self, code: str, message: str, *, retry_after: int) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """Not the caller's fault and not done: retry after `retry_after` seconds."""

    status_code = 503

    def __init__(self, code: str, message: str, *, retry_after: int = 5) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after
