"""Every error Notifier raises on purpose.

    NotifierError
    ├── ConfigurationError      a setting is missing or malformed (names the variable)
    ├── ValidationError         bad input from a person: a closure, an address, a CSV row;
    │   │                       ``field`` names the input it is about (forms put it there)
    │   └── NotFoundError       an id or slug that does not exist (or is not the actor's)
    ├── ForbiddenError          the actor's role may not do this (a viewer, a read token)
    ├── TemplateError           a template that does not compile or render
    └── ChannelError            a provider refused or failed a send (see channels.base)

The message of each is written for the person who has to fix the problem.
"""

from __future__ import annotations


class NotifierError(Exception):
    """Base class for Notifier's own errors."""


class ConfigurationError(NotifierError):
    """A setting is missing or malformed."""


class ValidationError(NotifierError):
    """Input that breaks a rule; the message says which rule and which value."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def about(self, field: str) -> ValidationError:
        """The same error, said to be about ``field`` unless it already names one."""
        if self.field is None:
            self.field = field
        return self


class NotFoundError(ValidationError):
    """The thing asked for does not exist."""


class TemplateError(NotifierError):
    """A message template failed to compile or render."""


class ForbiddenError(NotifierError):
    """The actor's role may not do this (a viewer cannot send, a read token cannot cancel)."""
