"""Patient addresses: normalise phone numbers to E.164 and emails, and mask both for logs."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from notifier.domain.channels import AddressField
from notifier.errors import ValidationError


def normalize_phone(raw: str, default_region: str = "US") -> str:
    """Return ``raw`` as E.164 (``+15405550123``) or raise naming the problem."""
    text = raw.strip()
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(
            f"phone {mask_phone(text)!r} is not a phone number ({exc})", "phone"
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(
            f"phone {mask_phone(text)!r} is not a valid number for its region", "phone"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_phone(e164: str) -> str:
    """A clinic's number as people write it in its own country: ``(540) 555-0100``."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def normalize_email(raw: str) -> str:
    """Return a normalised email address or raise naming the problem (no DNS lookups)."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationError(f"email {mask_email(raw)!r} is not valid: {exc}", "email") from exc


def mask_phone(phone: str) -> str:
    """``+15405550123`` → ``+1******0123``: enough for ops to tell numbers apart, no more."""
    digits = phone.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    keep_head = 2 if digits.startswith("+") else 0
    return digits[:keep_head] + "*" * (len(digits) - keep_head - 4) + digits[-4:]


def mask_email(email: str) -> str:
    """``maria.lopez@example.org`` → ``m***@example.org``."""
    local, sep, domain = email.strip().partition("@")
    if not sep:
        return "*" * min(len(local), 8)
    return (local[:1] + "***" if local else "***") + "@" + domain


def mask_address(address: str) -> str:
    """Mask a delivery address for display, whatever its channel."""
    return mask_email(address) if "@" in address else mask_phone(address)


def normalize_address(field: AddressField, raw: str, default_region: str = "US") -> str:
    """A channel's address in its canonical form (E.164 phone, normalised email)."""
    if field is AddressField.PHONE:
        return normalize_phone(raw, default_region)
    return normalize_email(raw)


_EMAILS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")
_DATE = r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)"  # ISO dates: never a phone number
_NOT_DATE = f"(?!{_DATE})"
# A date, left as it is; or a run of digits and separators that stops where a date begins
# (``5405550121 2027-01-06``: the number is masked, the date kept).
_NUMBERS = re.compile(
    f"(?P<date>{_DATE})|[+(]?{_NOT_DATE}\\d(?:{_NOT_DATE}[\\d\\s().-]){{5,}}{_NOT_DATE}\\d"
)


def mask_text(text: str) -> str:
    """Free text (an exception, a provider's error) with every email and phone number in it
    masked, so it can be stored and logged. A run of 7 or more digits counts as a phone
    number; dates and short codes (SMTP's ``550 5.1.1``) are left alone. Compatibility forms
    (fullwidth ``＠`` and digits) are folded to their plain forms first (NFKC)."""
    text = _EMAILS.sub(lambda m: mask_email(m.group(0)), unicodedata.normalize("NFKC", text))
    return _NUMBERS.sub(_mask_number, text)


def _mask_number(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = re.sub(r"\D", "", run)
    if match.group("date") or len(digits) < 7:
        return run
    return mask_phone(("+" if run.startswith("+") else "") + digits)
