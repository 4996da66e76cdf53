"""The one exception tree of campaignflow.

Every error the platform raises on purpose derives from :class:`CampaignflowError`; a subclass's
docstring is its default message, so raising ``NotFound()`` already says something useful. The API
turns these into RFC 9457 problem documents in one place (``api/problems.py``); drivers' and HTTP
clients' exceptions are translated at the boundary and never reach route handlers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from campaignflow.domain.problems import Problem


class CampaignflowError(Exception):
    """Something went wrong in campaignflow."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip().splitlines()[0]
        super().__init__(self.message)


class ConfigurationError(CampaignflowError):
    """The configuration is invalid or unsafe."""


class StorageError(CampaignflowError):
    """The database could not complete the operation."""


class LeaseLost(StorageError):
    """Another worker took the leased work over (this one was presumed dead): stop, write
    nothing."""


class DatabaseUnavailable(StorageError):
    """The database is not reachable."""


class ClientError(CampaignflowError):
    """The request cannot be served as sent."""


class InvalidValue(ClientError):
    """A value in the request cannot be stored or compared by the database."""


class NotFound(ClientError):
    """The resource does not exist."""


class Conflict(ClientError):
    """The resource is in a state that does not allow this operation."""


class AlreadyExists(Conflict):
    """A resource with this id already exists."""


class IdempotencyKeyReused(ClientError):
    """This Idempotency-Key was already used with a different request."""


class PreconditionFailed(ClientError):
    """The resource changed since you last read it; fetch it again and retry."""


class PreconditionRequired(ClientError):
    """This update needs an If-Match header with the ETag you last read."""


class InvalidDefinition(ClientError):
    """The workflow definition is invalid."""

    def __init__(self, problems: Sequence[Problem], message: str | None = None) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(message or f"The workflow definition has {count} problem(s).")


class InvalidBody(ClientError):
    """The request body does not fit the model that checks it (422 with every problem)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"The request body has {len(self.problems)} problem(s).")


class InvalidScenario(ClientError):
    """The dry-run scenario is invalid."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"The scenario has {len(self.problems)} problem(s).")


class InvalidField(ClientError):
    """A field of the request is not valid."""

    def __init__(self, message: str, pointer: str) -> None:
        super().__init__(message)
        self.pointer = pointer


class Unauthenticated(ClientError):
    """Credentials are missing or invalid."""


class Forbidden(ClientError):
    """Your credential does not allow this operation."""


class AddressNotAllowed(Forbidden):
    """Requests from this address are not allowed for this credential or workspace."""


class RateLimited(ClientError):
    """Too many requests; retry after the time given in Retry-After."""

    def __init__(self, retry_after_seconds: int, message: str | None = None) -> None:
        self.retry_after_seconds = max(1, retry_after_seconds)
        super().__init__(message)


class SecurityError(CampaignflowError):
    """A security component failed."""


class SealedDataError(SecurityError):
    """Sealed data cannot be opened: tampered with, sealed for another context, or wrapped by an
    unknown key."""


class SecretStoreUnavailable(SecurityError):
    """The secret store is not reachable."""
