"""Email over SMTP: multipart plain text + HTML, one stable Message-ID per delivery.

The List-Unsubscribe headers go out as RFC 2369 readers parse them (``<https://…>, <mailto:…>``,
folded only between the items): the email package would fold a long one into RFC 2047
encoded-words, in which a strict reader (Gmail's one-click) finds no URI.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
import threading
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import ClassVar

from notifier.channels.base import ChannelError, OutgoingMessage, SendResult
from notifier.clock import Clock, SystemClock
from notifier.domain.channels import AddressField, ChannelSpec, MessageFormat
from notifier.settings import Settings
from notifier.unsubscribe import unsubscribe_headers

# Headers stored with ``set_raw`` are written as given; the others fold as usual.
_POLICY = policy.default.clone(refold_source="none")
_ANGLE_ITEMS = re.compile(r"<[^<>]*>")
_PRINTABLE = re.compile(r"[\x20-\x7e]+")


class EmailChannel:
    spec: ClassVar[ChannelSpec] = ChannelSpec(
        "email",
        "email",
        AddressField.EMAIL,
        MessageFormat.EMAIL,
        ("smtp_host", "email_from"),
        consent_field="email_consent",
        rate_setting="email_rate_per_second",
        # A mailbox that does not exist or refuses us for good: a text or a call may reach.
        curable_codes=frozenset({"5xx"}),
    )

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        assert settings.smtp_host is not None and settings.email_from is not None
        self.settings = settings
        self.clock: Clock = clock or SystemClock()  # dates each email (its Date header)
        self.sender = settings.email_from
        self.domain = settings.email_from.rpartition("@")[2] or "notifier.local"
        self._local = threading.local()  # one SMTP connection per dispatcher thread

    def message_id(self, delivery_id: int) -> str:
        """Stable per delivery, so a resend after a crash can be recognised downstream."""
        return f"<delivery-{delivery_id}@{self.domain}>"

    def build(self, message: OutgoingMessage) -> EmailMessage:
        email = EmailMessage(policy=_POLICY)
        email["From"] = self.sender
        email["To"] = message.to
        email["Subject"] = message.subject or ""
        email["Date"] = format_datetime(self.clock.now())
        email["Message-ID"] = self.message_id(message.delivery_id)
        if message.patient_id is not None:  # RFC 8058 one-click unsubscribe
            for name, value in unsubscribe_headers(
                self.settings, self.spec.name, message.patient_id, message.to
            ).items():
                folded = fold_between_items(name, value)
                if folded is None:
                    email[name] = value
                else:
                    email.set_raw(name, folded)
        email.set_content(message.text)
        if message.html:
            email.add_alternative(message.html, subtype="html")
        return email

    def send(self, message: OutgoingMessage) -> SendResult:
        email = self.build(message)
        try:
            refused = self._connection().send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _reply_error("recipient refused", code, text) from None
        except smtplib.SMTPResponseException as exc:  # includes SMTPDataError, SMTPSenderRefused
            self._drop_connection()
            raise _reply_error(
                "server refused the message", exc.smtp_code, exc.smtp_error
            ) from None
        except smtplib.SMTPServerDisconnected:
            self._drop_connection()
            # Mid-DATA the server may already have queued it: check before resending.
            raise ChannelError(
                "SMTP server disconnected", code="disconnected", ambiguous=True
            ) from None
        except TimeoutError:
            self._drop_connection()
            raise ChannelError("SMTP server timed out", code="timeout", ambiguous=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            self._drop_connection()
            raise ChannelError(f"SMTP failure: {type(exc).__name__}", code="connection") from None
        if refused:
            code, text = next(iter(refused.values()))
            raise _reply_error("recipient refused", code, text)
        return SendResult(provider_id=email["Message-ID"])

    def find_sent(self, message: OutgoingMessage, since: datetime) -> SendResult | None:
        """SMTP cannot be asked what it already accepted; the stable Message-ID lets the
        receiving side drop a duplicate."""
        return None

    def close(self) -> None:
        self._drop_connection()

    def _connection(self) -> smtplib.SMTP:
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        if connection is not None:
            try:
                if connection.noop()[0] == 250:
                    return connection
            except (OSError, smtplib.SMTPException):
                pass
            self._drop_connection()
        connection = self._connect()
        self._local.connection = connection
        return connection

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        assert s.smtp_host is not None
        try:
            connection = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
            if s.smtp_starttls:
                connection.starttls(context=ssl.create_default_context())
            if s.smtp_username and s.smtp_password:
                connection.login(s.smtp_username, s.smtp_password.get_secret_value())
        except smtplib.SMTPAuthenticationError as exc:
            raise _reply_error("SMTP login failed", exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPResponseException as exc:
            raise _reply_error("SMTP server refused us", exc.smtp_code, exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(
                f"could not connect to SMTP server {s.smtp_host}:{s.smtp_port}: "
                f"{type(exc).__name__}",
                code="connection",
            ) from None
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()


def _reply_error(what: str, code: int, text: bytes | str) -> ChannelError:
    """SMTP 5xx is permanent, 4xx transient."""
    reply = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return ChannelError(f"{what}: {code} {reply}", code=str(code), permanent=500 <= code < 600)


def fold_between_items(name: str, value: str, width: int = 78) -> str | None:
    """An RFC 2369 list (``<a>, <b>``) as it is, a new line only between two items and only
    where the line would pass ``width``; None for anything else (printable ASCII lists only)."""
    items = _ANGLE_ITEMS.findall(value)
    if not items or ", ".join(items) != value or not _PRINTABLE.fullmatch(value):
        return None
    lines = [items[0]]
    used = len(name) + 2 + len(items[0])
    for item in items[1:]:
        if used + 2 + len(item) <= width:
            lines[-1] += ", " + item
            used += 2 + len(item)
        else:
            lines[-1] += ","
            lines.append(" " + item)
            used = len(lines[-1])
    return "\n".join(lines)
