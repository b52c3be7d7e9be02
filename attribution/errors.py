"""The few error classes callpath raises on purpose.

``ApiError`` and its subclasses become a ``{error, detail}`` JSON answer; anything
else that escapes a route is logged and answered as a bare 500 with no traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(Exception):
    """A pools file (or the environment it names) that cannot be served.

    ``problems`` holds every ``(key path, reason)`` found, not just the first.
    """

    def __init__(self, problems: Sequence[tuple[str, str]], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.source}: " if self.source else ""
        n = len(self.problems)
        lines = [f"{head}{n} problem{'s' if n != 1 else ''}:"]
        lines += [f"  {path}: {msg}" for path, msg in self.problems]
        return "\n".join(lines)


class ApiError(Exception):
    """A request refused with a 4xx; ``field`` names what was wrong."""

    status = 400
    error = "bad_request"

    def __init__(
        self,
        detail: str,
        field: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        if status is not None:
            self.status = status

    def body(self) -> dict[str, str]:
        out = {"error": self.error, "detail": self.detail}
        if self.field:
            out["field"] = self.field
        return out


class BadRequest(ApiError):
    """The body or a parameter is malformed or fails validation."""


class Unauthorized(ApiError):
    """No key, or not this site's key."""

    status = 401
    error = "unauthorized"


class Forbidden(ApiError):
    """A valid key asking about another site's data."""

    status = 403
    error = "forbidden"


class NotFound(ApiError):
    """The thing named in the path does not exist (or is not yours)."""

    status = 404
    error = "not_found"


class TooLarge(ApiError):
    """The body is over the configured limit; it was not read further."""

    status = 413
    error = "body_too_large"


class RateLimited(ApiError):
    """Too many new sessions from one address."""

    status = 429
    error = "rate_limited"


class DeliveryError(Exception):
    """An event GA4 did not take."""


class TransientDeliveryError(DeliveryError):
    """Network failure, timeout, 429 or 5xx: retry later with backoff."""


class PermanentDeliveryError(DeliveryError):
    """A payload GA4 refuses or can never accept (4xx, outside the 72 h window): dead-letter."""
