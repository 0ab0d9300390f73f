"""Domain errors: every refusal names what is wrong so callers can show it as is."""

from __future__ import annotations


class DomainError(Exception):
    """Base for errors the product reports to a person instead of crashing."""


class ValidationError(DomainError):
    """Input that breaks a rule; ``field`` names the offending field (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConflictError(DomainError):
    """The action lost a race or the state moved on; retrying after a reload may succeed."""


class NotFoundError(DomainError):
    """The subject of an action does not exist (or is not visible to the actor)."""


class PermissionDenied(DomainError):
    """The actor's role does not allow the action."""


class TransitionError(ConflictError):
    """A state machine refused a move (a claim approved twice, a paid payment retried)."""
