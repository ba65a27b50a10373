"""Tables. The database is the one source of truth for what must be sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always returns aware UTC datetimes, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database; times must be aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        instant = datetime.fromisoformat(value) if isinstance(value, str) else value  # raw SQLite
        if not isinstance(instant, datetime):
            raise TypeError(f"a time column held {type(value).__name__}")
        return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Location(Base):
    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(20))
    business_hours: Mapped[dict[str, list[str]]] = mapped_column(JSON)
    default_language: Mapped[str] = mapped_column(String(8), default="en")
    # The public page, banner, calendar, Atom, CAP and JSON feeds (web/public.py); off: 404.
    public_feeds: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Patients' texts during a closure are answered with its wording (usecases/replies.py).
    auto_reply: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (
        Index("ix_patients_location_phone", "location_id", "phone"),
        Index("ix_patients_location_email", "location_id", "email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(8), default="en")
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    email_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    voice_consent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    phone_type: Mapped[str | None] = mapped_column(String(10))  # mobile, landline; None: unknown
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the patient's contact data was erased on request (``notifier patients forget``).
    forgotten_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    location: Mapped[Location] = relationship()


class Notice(Base):
    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    # A reason category (domain.notices.ReasonCode), and the reason and custom message in
    # languages other than the location's: {"reason": {"es": ...}, "message": {"es": ...}}.
    reason_code: Mapped[str | None] = mapped_column(String(20))
    texts: Mapped[dict[str, dict[str, str]] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # What the notice was judged against, kept with it: the closed intervals as
    # [[start, end], ...] in UTC ISO form (starts_at/ends_at are their envelope), the location's
    # zone and business hours at the time. The words come from these, never from the location's
    # current settings: a stored notice is a fact.
    intervals: Mapped[list[list[str]]] = mapped_column(JSON)
    timezone: Mapped[str] = mapped_column(String(64))
    business_hours: Mapped[dict[str, list[str]]] = mapped_column(JSON)
    audience: Mapped[str] = mapped_column(String(20), default="everyone", server_default="everyone")
    change: Mapped[str] = mapped_column(String(20), default="original", server_default="original")
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id"), index=True)
    root_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id"), index=True)
    # When the public feeds show it (None: not yet, a draft until it is sent); ``private``
    # notices never appear there. Every version of a notice carries its chain's values.
    publish_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    private: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Who did what (issue 20): each an actor's kind (operator, user, token), id and name.
    created_by_kind: Mapped[str | None] = mapped_column(String(20))
    created_by_id: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(254))
    created_by_token_id: Mapped[int | None] = mapped_column(Integer)  # through a personal token
    # More patients than NOTIFIER_APPROVAL_THRESHOLD: a second manager approves before it sends.
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    approved_by_kind: Mapped[str | None] = mapped_column(String(20))
    approved_by_id: Mapped[int | None] = mapped_column(Integer)
    approved_by: Mapped[str | None] = mapped_column(String(254))
    approved_by_token_id: Mapped[int | None] = mapped_column(Integer)  # through a personal token
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Sent by one manager alone, with the reason they gave (flagged in the log and console).
    emergency_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_by_kind: Mapped[str | None] = mapped_column(String(20))
    cancelled_by_id: Mapped[int | None] = mapped_column(Integer)
    cancelled_by: Mapped[str | None] = mapped_column(String(254))
    cancelled_by_token_id: Mapped[int | None] = mapped_column(Integer)  # through a personal token
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    location: Mapped[Location] = relationship()
    broadcasts: Mapped[list[Broadcast]] = relationship(
        back_populates="notice", order_by="Broadcast.id"
    )


class Broadcast(Base):
    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_status_send_at", "status", "send_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"), index=True)
    send_at: Mapped[datetime] = mapped_column(UTCDateTime())
    channels: Mapped[str] = mapped_column(String(100))  # comma-separated channel names
    # True/False as chosen; None: urgent when the closure starts on the local day of the send.
    urgent: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20))
    status_reason: Mapped[str | None] = mapped_column(Text)
    # A reminder: it goes again to the recipients of this broadcast (None: to the audience).
    repeats_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id"))
    # The notice's fallback order ("sms>voice>email"): a permanent failure another channel may
    # cure queues the next channel with consent, once. None: no fallback.
    fallback: Mapped[str | None] = mapped_column(String(100))
    fanned_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    notice: Mapped[Notice] = relationship(back_populates="broadcasts")

    @property
    def channel_names(self) -> tuple[str, ...]:
        """``channels`` as names: the one place the stored comma list is split."""
        return tuple(name for name in self.channels.split(",") if name)


class Delivery(Base):
    """One message to one address over one channel for one broadcast."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "channel", "address"),
        # Serves the claim query: WHERE state = 'pending' AND next_attempt_at <= now ORDER BY ...
        Index("ix_deliveries_claim", "state", "next_attempt_at", "id"),
        # Serves the weekly SMS cap: texts to one address in the last seven days.
        Index("ix_deliveries_cap", "channel", "address", "created_at"),
        # Serves the provider's status callbacks. Partial: a row is queued without an id, and a
        # fan-out need not index 100k NULLs.
        Index(
            "ix_deliveries_provider_id",
            "provider_id",
            postgresql_where=text("provider_id IS NOT NULL"),
            sqlite_where=text("provider_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id"))
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(254))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    needs_reconcile: Mapped[bool] = mapped_column(Boolean, default=False)
    provider_id: Mapped[str | None] = mapped_column(String(100))
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int | None] = mapped_column(Integer)
    # Which message: None for the general notice, "appointment" for the patient's own
    # affected appointments.
    message_kind: Mapped[str | None] = mapped_column(String(20))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The delivery whose permanent failure queued this one (the notice's fallback), if any.
    fallback_of: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    broadcast: Mapped[Broadcast] = relationship()
    patient: Mapped[Patient] = relationship()


class Appointment(Base):
    """A patient's visit, imported from the practice's schedule, to tell who a closure hits."""

    __tablename__ = "appointments"
    __table_args__ = (Index("ix_appointments_location_starts", "location_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    provider: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    patient: Mapped[Patient] = relationship()


class DeliveryEvent(Base):
    """Append-only: every state change, attempt and error of a delivery."""

    __tablename__ = "delivery_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    code: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)


class OptOut(Base):
    """An address that asked not to be contacted on a channel (STOP, unsubscribe, 21610...)."""

    __tablename__ = "opt_outs"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(254))
    source: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentEvent(Base):
    """Append-only consent ledger: who, when, how, which channel, old → new."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_channel_address", "channel", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(254))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    source: Mapped[str] = mapped_column(String(40))  # keyword, 21610, unsubscribe_link, api...
    old: Mapped[str] = mapped_column(String(20))  # opted_in / opted_out
    new: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)


class InboundMessage(Base):
    """A keyword text (STOP, START, HELP…), once per provider message id (Twilio's MessageSid):
    a webhook replayed later finds its id here and changes nothing. Neither the body nor the
    sender is kept: the consent ledger records whom a keyword changed."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("channel", "provider_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    provider_id: Mapped[str] = mapped_column(String(64))
    keyword: Mapped[str | None] = mapped_column(String(20))  # stop, start, help
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Receipt(Base):
    """A provider's report on a sent message (a status callback, or the provider's answer when
    asked), taken in before it is applied: once per (channel, provider id, status). Applied in
    batches; kept for NOTIFIER_RECEIPTS_KEEP_DAYS so a repeat finds its key, then purged."""

    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("channel", "provider_id", "status"),
        # Serves the apply claim: WHERE applied_at IS NULL AND due_at <= now ORDER BY due_at, id
        Index("ix_receipts_claim", "applied_at", "due_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    provider_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))  # the provider's word, lower case
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)  # masked before stored
    source: Mapped[str] = mapped_column(String(20))  # callback, reconcile
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())  # later for a not-yet-known id
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(20))  # applied, duplicate, ignored...


class SpokenMessage(Base):
    """The words a call speaks, rendered when the call is placed: the provider fetches them
    (TwiML) when the call is answered, and again when the patient presses 1."""

    __tablename__ = "spoken_messages"

    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProviderCheck(Base):
    """When the provider was last asked about a delivery left "sent" (reconciliation)."""

    __tablename__ = "provider_checks"

    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A bearer token for /api/v1; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # May read patients' names and addresses (the log's patient field, not-reached lists).
    sees_patients: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # read: reads only; send: also creates, sends and cancels notices, imports, lifts opt-outs.
    scope: Mapped[str] = mapped_column(String(10), default="send", server_default="send")
    # Every location (tokens made before scopes existed); else those in token_locations.
    all_locations: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # A personal token acts as this console user (within their role and locations); None: a
    # service token, acting as itself.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class TokenLocation(Base):
    """A location an API token may see and act in (when it does not have them all)."""

    __tablename__ = "token_locations"

    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), primary_key=True)


class User(Base):
    """A console user: a clinic manager (notices) or a viewer (read-only logs)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, with its parameters
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Every location (admins, users made before scopes existed); else those in user_locations.
    all_locations: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class UserLocation(Base):
    """A location a console user may see and act in (when they do not have them all)."""

    __tablename__ = "user_locations"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), primary_key=True)


class AuditEvent(Base):
    """Append-only: who did or read what, when, from where. Ids and counts only, never
    patients' data. On PostgreSQL a trigger refuses UPDATE and DELETE."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_kind: Mapped[str] = mapped_column(String(10))  # operator, user, token
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(254))  # a staff email, a token's name
    # The personal API token a user acted through (None: the console, the CLI, or not a user).
    token_id: Mapped[int | None] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))  # notice_create, patients_list, signin...
    target: Mapped[str | None] = mapped_column(String(100))  # "notice:7", "location:2"
    count: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(10), default="ok")  # ok, refused


class SuppressedHash(Base):
    """An opt-out whose address was erased (a forgotten patient): only a keyed hash of the
    address is kept, so the address stays suppressed if it is ever imported again."""

    __tablename__ = "suppressed_hashes"
    __table_args__ = (UniqueConstraint("channel", "digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    digest: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256 hex of the address
    source: Mapped[str] = mapped_column(String(40))  # the original opt-out's source
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsoleSession(Base):
    """A signed-in console session. The cookie holds a random id; only its SHA-256 is kept."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))  # every POST of this session carries it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_because: Mapped[str | None] = mapped_column(String(20))  # signed_out, replaced, ...


class SignInAttempt(Base):
    """A console sign-in attempt, recorded (as pending) before its password is checked."""

    __tablename__ = "sign_in_attempts"
    __table_args__ = (Index("ix_sign_in_attempts_ip_at", "ip", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ip: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(64))  # SHA-256 of the lower-cased email given
    outcome: Mapped[str] = mapped_column(String(10))  # pending, failed, succeeded, busy


class Worker(Base):
    """A running ``notifier serve`` process. It beats every NOTIFIER_HEARTBEAT_SECONDS; one
    that stops beating is dead, and any live process hands its claimed deliveries back."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # host:pid:random
    role: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SendRate(Base):
    """The fleet's send timeline per sender (PostgreSQL): ``tat`` is the database-clock time
    (epoch seconds) at which the sender's last granted segment has gone out; every worker takes
    its next slots after it, in one atomic statement."""

    __tablename__ = "send_rates"

    sender: Mapped[str] = mapped_column(String(100), primary_key=True)  # "sms", "sms:+1555…"
    tat: Mapped[float] = mapped_column(Double())


class Conversation(Base):
    """A patient's number writing to one of our senders, in the inbox of one location (None:
    a number no patient and no delivery explains, seen by staff of every location)."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("location_id", "channel", "address"),
        Index("ix_conversations_location_last", "location_id", "last_message_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(254))  # the patient's number; erased:<id> later
    sender: Mapped[str | None] = mapped_column(String(254))  # the number the patient wrote to
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    notice_id: Mapped[int | None] = mapped_column(
        ForeignKey("notices.id")
    )  # it most likely answers
    unread: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime())  # unanswered since
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConversationMessage(Base):
    """One text of a conversation: the patient's, a manager's answer or the auto-reply, with
    its state (answers: queued, sending, sent, delivered, failed with the reason). Answers
    are a queue the ``send_answers`` job claims with a lease, as deliveries are. Bodies are
    patient data: erased by retention like deliveries' addresses."""

    __tablename__ = "conversation_messages"
    __table_args__ = (
        UniqueConstraint("channel", "provider_id"),  # a replayed webhook adds nothing
        UniqueConstraint("conversation_id", "auto_notice_id"),  # one auto-reply per version
        Index("ix_conversation_messages_claim", "state", "next_attempt_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    author: Mapped[str] = mapped_column(String(20))  # patient, staff, auto
    body: Mapped[str | None] = mapped_column(Text)  # None once erased
    state: Mapped[str] = mapped_column(String(20))
    provider_id: Mapped[str | None] = mapped_column(String(100))
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id"))
    auto_notice_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id"))
    sent_by: Mapped[str | None] = mapped_column(String(254))  # the actor's label: user:3
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The outgoing queue (answers and auto-replies only).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    needs_reconcile: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
