"""A real SMTP server on loopback for tests, built on aiosmtpd's threaded ``Controller``.

Records every accepted message, and can inject faults per SMTP stage: transient (4xx) and
permanent (5xx) replies, "421" replies that close the connection, latency, and dropped
connections without a reply. Optional AUTH (PLAIN/LOGIN) and STARTTLS with a throw-away
self-signed certificate made by the ``openssl`` CLI.

Standalone, for subprocess/crash tests::

    python -m notifier_sandbox.smtp_server --port 2525 --maildir /tmp/mail
    # prints {"host": "127.0.0.1", "port": 2525} on one line, then serves until SIGTERM/SIGINT;
    # every accepted message is written atomically to /tmp/mail/000001.eml, 000002.eml, ...
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import itertools
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Stage = Literal["connect", "mail", "rcpt", "data"]
DROP = "drop"  # close the socket without replying; at DATA the message is discarded
DROP_AFTER_ACCEPT = "drop-after-accept"  # DATA only: store the message, then close, no reply
_MATCH_KEYS = {"rcpt_regex", "mail_from_regex"}
# aiosmtpd 1.4 itself sets the deprecated Session.login_data on every AUTH and logs a warning.
logging.getLogger("mail.log").addFilter(lambda r: "login_data is deprecated" not in r.getMessage())


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    login: str | None  # AUTH user, if the client authenticated
    tls: bool  # True if sent after STARTTLS


@dataclass
class Fault:
    """An injected behaviour for one stage; ``times=None`` means forever."""

    stage: Stage
    reply: str | None  # SMTP reply, DROP, DROP_AFTER_ACCEPT, or None (only delay)
    match: dict[str, str] | None = None
    times: int | None = 1
    delay_s: float = 0.0
    hits: int = 0
    _patterns: dict[str, re.Pattern[str]] = field(default_factory=dict, repr=False)

    def matches(self, mail_from: str | None, rcpts: list[str]) -> bool:
        if (p := self._patterns.get("mail_from_regex")) and not p.search(mail_from or ""):
            return False
        p = self._patterns.get("rcpt_regex")
        return p is None or any(p.search(r) for r in rcpts)


def free_port(host: str = "127.0.0.1") -> int:
    """A currently unused TCP port (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, fake: FakeSmtp) -> None:
        self.fake = fake

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.fake.auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        status = await self.fake._apply("mail", server, address, [])
        if status is None or status.startswith("2"):
            envelope.mail_from = address
            envelope.mail_options.extend(options)
        return status or "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        status = await self.fake._apply("rcpt", server, envelope.mail_from, [address])
        if status is None or status.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
        return status or "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fake = self.fake
        status = await fake._apply("data", server, envelope.mail_from, envelope.rcpt_tos)
        if status is not None and status != DROP_AFTER_ACCEPT and not status.startswith("2"):
            return status
        raw = cast(bytes, envelope.original_content)
        auth_data = session.auth_data
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None
        fake._record(
            ReceivedMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=raw,
                message=cast(
                    EmailMessage, email.message_from_bytes(raw, policy=email.policy.default)
                ),
                login=login,
                tls=session.ssl is not None,
            )
        )
        if status == DROP_AFTER_ACCEPT:
            return await _drop(server)
        return status or "250 2.0.0 Message accepted for delivery"


async def _drop(server: SMTP) -> str:
    """Close the connection without a reply; connection_lost() then cancels this coroutine."""
    if server.transport is not None:
        server.transport.close()
    await asyncio.sleep(3600)
    return "421 4.4.2 unreachable"


class _FaultySMTP(SMTP):
    """aiosmtpd's SMTP plus connect-stage faults and "421 closes the connection"."""

    def __init__(self, fake: FakeSmtp, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fake = fake
        self._greeted = False

    async def push(self, status: Any) -> None:
        if not self._greeted:  # the first push is the 220 greeting
            self._greeted = True
            fault_status = await self._fake._apply("connect", self, None, [])
            if fault_status == DROP:
                await _drop(self)
            status = fault_status or status
        await super().push(status)
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text.startswith("421") and self.transport is not None:
            self.transport.close()  # RFC 5321 4.2.2: 421 means the server closes the channel


class _Controller(Controller):
    def __init__(self, fake: FakeSmtp, **kwargs: Any) -> None:
        super().__init__(_Handler(fake), **kwargs)
        self._fake = fake

    def factory(self) -> SMTP:
        return _FaultySMTP(self._fake, self.handler, **self.SMTP_kwargs)


class FakeSmtp:
    """Loopback SMTP server recording messages; thread-safe, usable as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        auth: tuple[str, str] | None = None,
        starttls: bool = False,
        require_starttls: bool = False,
        latency: tuple[float, float] | None = None,
        maildir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or 0
        self.auth = auth
        self.starttls = starttls
        self.require_starttls = require_starttls
        self.latency = latency
        self.maildir = Path(maildir) if maildir is not None else None
        self.cert_path: str | None = None  # PEM to trust, when starttls=True
        self._fixed_port = port is not None
        self._lock = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._faults: list[Fault] = []
        self._counter = itertools.count(1)
        self._controller: _Controller | None = None
        self._tmpdir: str | None = None
        self._armed = False  # the Controller's own start-up probe must not consume faults

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeSmtp:
        kwargs: dict[str, Any] = {"server_hostname": "fake-smtp.test", "ready_timeout": 5.0}
        if self.auth:
            kwargs |= {"authenticator": self._authenticate, "auth_require_tls": False}
        if self.starttls:
            kwargs |= {
                "tls_context": self._tls_context(),
                "require_starttls": self.require_starttls,
            }
        if self.maildir is not None:
            self.maildir.mkdir(parents=True, exist_ok=True)
        for attempt in range(5):  # a picked free port can be taken before we bind it
            if not self._fixed_port:
                self.port = free_port(self.host)
            controller = _Controller(self, hostname=self.host, port=self.port, **kwargs)
            try:
                controller.start()
            except OSError:
                if self._fixed_port or attempt == 4:
                    raise
                continue
            self._controller = controller
            break
        self._armed = True
        return self

    def stop(self) -> None:
        self._armed = False
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> FakeSmtp:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inspection --------------------------------------------------------------------------
    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    def received_for(self, address: str) -> list[ReceivedMessage]:
        wanted = address.lower()
        return [m for m in self.messages if wanted in (r.lower() for r in m.rcpt_tos)]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages arrived (raises TimeoutError)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{len(self._messages)} of {count} messages arrived")
            return list(self._messages)

    def reset(self) -> None:
        """Forget received messages and pending faults."""
        with self._lock:
            self._messages.clear()
            self._faults.clear()

    # -- fault injection ---------------------------------------------------------------------
    def fault(
        self,
        match: dict[str, str] | None = None,
        stage: Stage = "rcpt",
        reply: str | None = "451 4.3.0 Try again later",
        times: int | None = 1,
        delay_s: float = 0.0,
    ) -> Fault:
        """Inject ``reply`` (or DROP / DROP_AFTER_ACCEPT / None = delay only) at ``stage``.

        A 2xx ``reply`` is sent in place of the normal one and the command still succeeds.
        ``match`` filters by ``rcpt_regex`` (rcpt and data stages: any recipient) and/or
        ``mail_from_regex`` (mail, rcpt and data stages). The first matching fault wins.
        """
        if stage not in ("connect", "mail", "rcpt", "data"):
            raise ValueError(f"unknown stage {stage!r}")
        match = dict(match or {})
        if unknown := set(match) - _MATCH_KEYS:
            raise ValueError(f"unknown match keys {sorted(unknown)}")
        if "rcpt_regex" in match and stage not in ("rcpt", "data"):
            raise ValueError("rcpt_regex only applies to the rcpt and data stages")
        if match and stage == "connect":
            raise ValueError("connect faults cannot match on the envelope")
        if reply == DROP_AFTER_ACCEPT and stage != "data":
            raise ValueError("drop-after-accept only applies to the data stage")
        patterns = {k: re.compile(v, re.IGNORECASE) for k, v in match.items()}
        new = Fault(stage, reply, match or None, times, delay_s, _patterns=patterns)
        with self._lock:
            self._faults.append(new)
        return new

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- internals (run on the server thread) ------------------------------------------------
    async def _apply(
        self, stage: Stage, server: SMTP, mail_from: str | None, rcpts: list[str]
    ) -> str | None:
        """Sleep as configured; return the fault reply for this stage, or None to proceed."""
        if not self._armed:
            return None
        if self.latency:
            await asyncio.sleep(random.uniform(*self.latency))
        with self._lock:
            fault = next(
                (
                    f
                    for f in self._faults
                    if f.stage == stage
                    and (f.times is None or f.hits < f.times)
                    and f.matches(mail_from, rcpts)
                ),
                None,
            )
            if fault is not None:
                fault.hits += 1
        if fault is None:
            return None
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.reply == DROP:
            return await _drop(server)
        return fault.reply

    def _record(self, record: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(record)
            if self.maildir is not None:
                name = f"{next(self._counter):06d}.eml"
                tmp = self.maildir / f".{name}.tmp"
                tmp.write_bytes(record.raw)
                os.replace(tmp, self.maildir / name)  # readers never see a partial file
            self._lock.notify_all()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.auth is not None
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.auth[0].encode(),
            self.auth[1].encode(),
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    def _tls_context(self) -> ssl.SSLContext:
        if shutil.which("openssl") is None:
            raise RuntimeError("starttls=True needs the openssl CLI to make a test certificate")
        self._tmpdir = tempfile.mkdtemp(prefix="fake-smtp-tls-")
        cert, key = Path(self._tmpdir, "cert.pem"), Path(self._tmpdir, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key),
             "-out", str(cert), "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.cert_path = str(cert)
        return context


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--maildir", help="write each accepted message as NNNNNN.eml here")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require AUTH PLAIN/LOGIN")
    parser.add_argument("--starttls", action="store_true", help="offer STARTTLS (self-signed)")
    parser.add_argument("--latency", nargs=2, type=float, metavar=("MIN_S", "MAX_S"))
    args = parser.parse_args(argv)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    fake = FakeSmtp(
        args.host,
        args.port or None,
        auth=cast("tuple[str, str] | None", auth),
        starttls=args.starttls,
        latency=tuple(args.latency) if args.latency else None,
        maildir=args.maildir,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with fake:
        info: dict[str, Any] = {"host": fake.host, "port": fake.port}
        if fake.cert_path:
            info["cert"] = fake.cert_path
        print(json.dumps(info), flush=True)
        while not stop.wait(0.5):  # a bare wait() would delay signal handling
            pass


if __name__ == "__main__":
    main()
