"""Patient lists: the five of the reference tests, and generated ones for volume tests (distinct
valid phones and emails at one location)."""

from __future__ import annotations

HEADER = "external_id,first_name,last_name,phone,email,language,location,sms_consent,email_consent"

PATIENTS_CSV = f"""\
{HEADER}
p1,Maria,Lopez,540-555-0111,maria@example.org,en,cova,yes,yes
p2,John,Smith,(540) 555-0112,,en,cova,yes,no
p3,Jane,Smith,540-555-0112,jane@example.org,en,cova,yes,yes
p4,Ana,Ruiz,540-555-0114,ana@example.org,en,cova,no,yes
p5,Tom,Reed,540-555-0115,tom@example.org,en,cova,no,no
"""
"""Five patients: p2 and p3 share a phone; p4 wants email only; p5 agreed to nothing."""


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
