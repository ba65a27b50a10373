"""Patients and their appointments, and the per-channel columns a channel's spec names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session, joinedload

from notifier.domain.channels import ChannelSpec
from notifier.storage.models import Appointment, Patient


def address_column(spec: ChannelSpec) -> ColumnElement[str]:
    """The patients column a channel sends to (phone, email)."""
    return cast(ColumnElement[str], getattr(Patient, spec.address.value))


def consent_column(spec: ChannelSpec) -> ColumnElement[bool]:
    """The patients column holding the consent the clinic imported for a channel."""
    return cast(ColumnElement[bool], getattr(Patient, spec.consent_field))


def patients_by_external_ids(s: Session, external_ids: Sequence[str]) -> dict[str, Patient]:
    rows = s.scalars(select(Patient).where(Patient.external_id.in_(external_ids)))
    return {patient.external_id: patient for patient in rows}


def appointments_by_external_ids(s: Session, external_ids: Sequence[str]) -> dict[str, Appointment]:
    rows = s.scalars(select(Appointment).where(Appointment.external_id.in_(external_ids)))
    return {appointment.external_id: appointment for appointment in rows}


def patients_with_address(s: Session, spec: ChannelSpec, address: str) -> Sequence[Patient]:
    return s.scalars(
        select(Patient)
        .where(address_column(spec) == address)
        .options(joinedload(Patient.location))
        .order_by(Patient.id)
    ).all()


def page(
    s: Session,
    location_id: int | None = None,
    limit: int = 200,
    offset: int = 0,
    within: frozenset[int] | None = None,
) -> tuple[Sequence[Patient], int]:
    """One page of patients (by external id) and how many there are in all, of the
    locations ``within`` (None: every location)."""
    query = select(Patient).options(joinedload(Patient.location))
    counted = select(func.count()).select_from(Patient)
    if location_id is not None:
        query = query.where(Patient.location_id == location_id)
        counted = counted.where(Patient.location_id == location_id)
    if within is not None:
        query = query.where(Patient.location_id.in_(within))
        counted = counted.where(Patient.location_id.in_(within))
    rows = s.scalars(query.order_by(Patient.external_id).limit(limit).offset(offset)).all()
    return rows, int(s.scalar(counted) or 0)


def languages_at(s: Session, location_id: int) -> list[str]:
    rows = s.scalars(select(Patient.language).where(Patient.location_id == location_id).distinct())
    return sorted(set(rows))


def language_counts(s: Session, location_id: int) -> dict[str, int]:
    """Patients at a location by language."""
    rows = s.execute(
        select(Patient.language, func.count())
        .where(Patient.location_id == location_id)
        .group_by(Patient.language)
    )
    return {language: count for language, count in rows}


def recipient_names(s: Session, location_id: int, spec: ChannelSpec) -> list[tuple[str, str, int]]:
    """Who a channel would reach at a location, as far as a message's length goes: (language,
    first name, addresses), one consenting patient per address."""
    address = address_column(spec)
    chosen = (
        select(func.min(Patient.id).label("id"))
        .where(Patient.location_id == location_id, address.is_not(None), consent_column(spec))
        .group_by(address)
        .subquery()
    )
    rows = s.execute(
        select(Patient.language, Patient.first_name, func.count())
        .join(chosen, chosen.c.id == Patient.id)
        .group_by(Patient.language, Patient.first_name)
    )
    return [(language, name, int(count)) for language, name, count in rows]


def recipient_addresses(s: Session, location_id: int, spec: ChannelSpec) -> list[str]:
    """Every address a channel would reach at a location (one per address), for sharing a
    broadcast out among senders."""
    address = address_column(spec)
    rows = s.scalars(
        select(address)
        .where(Patient.location_id == location_id, address.is_not(None), consent_column(spec))
        .distinct()
    )
    return list(rows)


def longest_first_names(s: Session, location_id: int, spec: ChannelSpec) -> list[tuple[str, str]]:
    """Per language, the longest first name of a patient who takes this channel's messages:
    (language, name)."""
    consent = consent_column(spec)
    longest = (
        select(Patient.language, func.max(func.length(Patient.first_name)).label("n"))
        .where(Patient.location_id == location_id, consent, address_column(spec).is_not(None))
        .group_by(Patient.language)
        .subquery()
    )
    rows = s.execute(
        select(Patient.language, func.min(Patient.first_name))
        .join(
            longest,
            and_(
                longest.c.language == Patient.language,
                func.length(Patient.first_name) == longest.c.n,
            ),
        )
        .where(Patient.location_id == location_id, consent)
        .group_by(Patient.language)
        .order_by(Patient.language)
    )
    return [(language, name) for language, name in rows]


def without_address(s: Session, location_id: int, spec: ChannelSpec) -> int:
    """Patients at the location with no address for the channel (none given, or an invalid one
    left out at import): no fan-out ever sees them."""
    return int(
        s.scalar(
            select(func.count()).where(
                Patient.location_id == location_id, address_column(spec).is_(None)
            )
        )
        or 0
    )
