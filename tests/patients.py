"""Generated patient lists for volume tests: distinct valid phones and emails at one location."""

from __future__ import annotations

HEADER = "external_id,first_name,last_name,phone,email,language,location,sms_consent,email_consent"


def phone(i: int) -> str:
    return f"+1540{2000000 + i}"


def email(i: int) -> str:
    return f"patient{i}@example.org"


def patients_csv(count: int, location: str = "cova", with_email: bool = True) -> str:
    rows = [HEADER]
    for i in range(count):
        mail = email(i) if with_email else ""
        rows.append(
            f"g{i},Pat{i},Test,{phone(i)},{mail},en,{location},yes,{'yes' if mail else 'no'}"
        )
    return "\n".join(rows) + "\n"
