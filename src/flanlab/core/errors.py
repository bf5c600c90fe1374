"""Errors that are the user's to fix: the CLI prints them as one clear message, not a traceback."""

from __future__ import annotations

__all__ = ["UnknownNameError", "UserError"]


class UserError(Exception):
    """Bad input (a file, a field, a flag): the message names it and says what was expected."""


class UnknownNameError(KeyError, UserError):
    """A registry miss; the message suggests close names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
