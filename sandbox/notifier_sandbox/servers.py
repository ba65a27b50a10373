"""``notifier sandbox``: the local Twilio-compatible and SMTP servers, started together and left
running, with the settings that point a ``notifier serve`` at them printed (and optionally
written to an env file). For trying the service on one machine; never for patients."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio

EMAIL_FROM = "closures@clinic.example"


def settings_for(
    twilio: FakeTwilio, smtp: FakeSmtp, public_host: str | None = None
) -> dict[str, str]:
    """The NOTIFIER_* settings that send through these servers (``public_host``: the name other
    machines or containers reach them by, instead of the address they listen on)."""
    host = public_host or smtp.host
    twilio_url = twilio.base_url if public_host is None else f"http://{host}:{twilio.port}"
    return {
        "NOTIFIER_TWILIO_ACCOUNT_SID": twilio.account_sid,
        "NOTIFIER_TWILIO_AUTH_TOKEN": twilio.auth_token,
        "NOTIFIER_TWILIO_FROM_NUMBER": twilio.from_number,
        "NOTIFIER_TWILIO_API_BASE_URL": twilio_url,
        "NOTIFIER_SMTP_HOST": host,
        "NOTIFIER_SMTP_PORT": str(smtp.port),
        "NOTIFIER_SMTP_STARTTLS": "false",
        "NOTIFIER_EMAIL_FROM": EMAIL_FROM,
    }


def run_sandbox(
    host: str = "127.0.0.1",
    twilio_port: int = 8765,
    smtp_port: int = 8025,
    env_file: Path | None = None,
    public_host: str | None = None,
    account_sid: str | None = None,
    auth_token: str | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (default: until interrupted)."""
    stop = stop or threading.Event()
    with (
        FakeTwilio(
            account_sid=account_sid,
            auth_token=auth_token,
            host=host,
            port=twilio_port,
            callback_delay=0.5,
            seed=None,
        ) as twilio,
        FakeSmtp(host, smtp_port or None) as smtp,
    ):
        values = settings_for(twilio, smtp, public_host)
        print(
            f"# Local Twilio-compatible server on {host}:{twilio.port}, SMTP server on "
            f"{host}:{smtp.port}. Ctrl-C stops them.\n"
            "# Point `notifier serve` at them (in its shell, or in .env):"
        )
        for name, value in values.items():
            print(f"export {name}={value}")
        if env_file is not None:
            env_file.write_text("".join(f"{n}={v}\n" for n, v in values.items()))
            print(f"# (also written to {env_file})")
        sys.stdout.flush()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> None:
    """``python -m notifier_sandbox.servers``: the same, without Notifier installed (compose's
    ``sandbox`` profile); fixed credentials so the service's settings can be written ahead."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--twilio-port", type=int, default=8765)
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--public-host")
    parser.add_argument("--account-sid", default=os.environ.get("SANDBOX_TWILIO_ACCOUNT_SID"))
    parser.add_argument("--auth-token", default=os.environ.get("SANDBOX_TWILIO_AUTH_TOKEN"))
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_sandbox(
        args.host,
        args.twilio_port,
        args.smtp_port,
        public_host=args.public_host,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        stop=stop,
    )


if __name__ == "__main__":
    main()
