"""Errors that tell the user what went wrong and how to fix it.

Every error the project raises on purpose derives from :class:`CloudRunsError`
and carries a ``hint``: the one thing to do next. Messages never contain secret
values (callers pass names of variables, never their contents).
"""

from __future__ import annotations


class CloudRunsError(Exception):
    """Base class for errors with an actionable hint.

    Args:
        message: What is wrong, naming the input, variable or resource.
        hint: How to fix it.

    Example:
        >>> raise CloudRunsError("GITHUB_APP_CLIENT_ID is not set", hint="Add it to .env")
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}\n  fix: {hint}" if hint else message)


class ConfigurationError(CloudRunsError):
    """A setting is missing or malformed."""


class InputError(CloudRunsError, ValueError):
    """A run's input is invalid; raised before any side effect."""


class ProductionRefusal(CloudRunsError):
    """A development-only component was asked to run in production."""
