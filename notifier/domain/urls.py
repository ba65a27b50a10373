"""URLs as they may be printed or logged: with their passwords and tokens masked.

A password sits in a URL's userinfo (``postgresql://u:pw@host/db``) or in a query parameter
(``?password=pw``, libpq's ``sslpassword``, an ``api_key``); libpq's keyword form
(``host=h password=pw``) has the same parameters separated by spaces.
"""

from __future__ import annotations

import re

MASK = "***"
SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "signature")
_PARAM = re.compile(r"(?P<lead>^|[?&;\s])(?P<name>[^=?&;#\s]+)=(?P<value>[^&;#\s]+)")


def mask_url_secrets(url: str) -> str:
    """``url`` with its userinfo password and the value of every parameter whose name says it
    is secret (password, pwd, secret, token, key, …) replaced by ``***``.

    The password is taken to end at the last ``@``: an unencoded ``@``, ``/`` or ``?`` in it is
    still masked (a later ``@`` in the path or query masks more than needed, never less)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _PARAM.sub(_mask_param, url)
    userinfo, at, location = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if at and colon:
        userinfo = f"{user}:{MASK}"
    path, question, query = location.partition("?")
    return f"{scheme}{sep}{userinfo}{at}{path}{question}{_PARAM.sub(_mask_param, query)}"


def _mask_param(match: re.Match[str]) -> str:
    name = match.group("name")
    if any(word in name.lower() for word in SECRET_WORDS):
        return f"{match.group('lead')}{name}={MASK}"
    return match.group(0)
