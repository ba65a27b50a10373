"""Every error Notifier raises on purpose.

    NotifierError
    ├── ConfigurationError      a setting is missing or malformed (names the variable)
    ├── ValidationError         bad input from a person: a closure, an address, a CSV row
    │   └── NotFoundError       an id or slug that does not exist
    ├── TemplateError           a template that does not compile or render
    └── ChannelError            a provider refused or failed a send (see channels.base)

The message of each is written for the person who has to fix the problem.
"""


class NotifierError(Exception):
    """Base class for Notifier's own errors."""


class ConfigurationError(NotifierError):
    """A setting is missing or malformed."""


class ValidationError(NotifierError):
    """Input that breaks a rule; the message says which rule and which value."""


class NotFoundError(ValidationError):
    """The thing asked for does not exist."""


class TemplateError(NotifierError):
    """A message template failed to compile or render."""
