"""HTTP layer of the fake Twilio server: a keep-alive ``ThreadingHTTPServer`` and its handler."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from notifier_sandbox import twilio_control
from notifier_sandbox.twilio_api import FORM, JSON_CT, MESSAGES_RE
from notifier_sandbox.twilio_support import (
    ERROR_MESSAGES,
    STATUS_DEFAULT_CODES,
    ApiError,
    error_body,
    first,
)


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, fake: Any) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.fake = fake
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(address, handler)

    def close_connections(self) -> None:
        with self.conns_lock:
            conns = list(self.conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.fake.log_requests:
            super().handle_error(request, client_address)


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeTwilio/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: FakeHTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self) -> None:
        with self.server.conns_lock:
            self.server.conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, *args: Any) -> None:
        if self.server.fake.log_requests:
            super().log_message(*args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake = self.server.fake
        try:
            if path.startswith("/__fake__/"):
                status, obj = twilio_control.handle(fake, self.command, path, query, raw)
                return self._write_json(status, obj)
            self._rest(fake, path, query, raw, split.query)
        except Exception as exc:  # keep serving; report like Twilio's 500
            self.close_connection = True
            self._write_json(500, error_body(20500, f"Fake error: {exc!r}", 500))

    def _rest(self, fake: Any, path: str, query: dict, raw: bytes, query_string: str) -> None:
        method = self.command
        ctype = self.headers.get("Content-Type", "")
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        if not ctype.startswith(FORM):
            form = {}
        auth_user = None
        if (auth := self.headers.get("Authorization", "")).lower().startswith("basic "):
            with contextlib.suppress(ValueError):
                auth_user = base64.b64decode(auth[6:]).decode().partition(":")[0]
        rec: dict[str, Any] = {
            "method": method,
            "path": path,
            "query": {k: v[0] for k, v in query.items()},
            "headers": dict(self.headers.items()),
            "form": form,
            "auth_user": auth_user,
            "time": fake.now(),
            "kind": "create" if method == "POST" and MESSAGES_RE.match(path) else None,
            "status": None,
            "outcome": None,
            "message_sid": None,
            "fault": None,
            "client_port": self.client_address[1],
        }
        fake._record(rec)
        # The rate limit meters creates as they arrive, in arrival order (not after the
        # simulated latency, which would reorder them); only creates that make a message keep
        # their charge.
        charge, limited = None, None
        if rec["kind"]:
            try:
                charge = fake._rate_charge(form, rec["time"])
            except ApiError as err:
                limited = err
        try:
            self._answer(fake, rec, path, query, form, ctype, query_string, limited)
        finally:
            if charge and not rec["message_sid"]:
                fake._rate_refund(charge)

    def _answer(self, fake, rec, path, query, form, ctype, query_string, limited) -> None:
        method = self.command
        if fake.latency:
            with fake._lock:
                delay = fake._latency_rng.uniform(*fake.latency)
            time.sleep(delay)
        if limited is not None:
            rec["status"], rec["outcome"] = limited.status, "rate_limited"
            return self._write_json(limited.status, limited.body())
        opts: dict[str, Any] = {}
        if rule := fake._match_fault(method, path, form, query_string):
            opts = rule["response"]
            rec["fault"] = rule["id"]
            if opts.get("delay_s"):
                time.sleep(float(opts["delay_s"]))
            if opts.get("drop"):
                rec["outcome"] = "dropped"
                return self._drop()
            if "status" in opts:
                rec["status"], rec["outcome"] = int(opts["status"]), "fault"
                return self._write_fault(opts, form, path)
        headers: dict[str, str] = {}
        try:
            fake._authenticate(self.headers.get("Authorization"))
            status, obj, sid = fake._route(method, path, query, form, ctype, opts)
            rec["message_sid"] = sid if rec["kind"] else None
        except ApiError as err:
            status, obj, sid = err.status, err.body(), None
            if err.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        rec["status"], rec["outcome"] = status, "ok" if status < 400 else "error"
        if sid and rec["kind"]:
            if opts.get("drop_after_create"):
                rec["outcome"] = "created_then_dropped"
                return self._drop()
            if opts.get("delay_after_create_s"):
                time.sleep(float(opts["delay_after_create_s"]))
        self._write_json(status, obj, headers)

    def _write_fault(self, opts: dict[str, Any], form, path: str) -> None:
        status = int(opts["status"])
        headers = {str(k): str(v) for k, v in (opts.get("headers") or {}).items()}
        if (retry := opts.get("retry_after")) is not None:
            headers["Retry-After"] = f"{retry:g}" if isinstance(retry, int | float) else str(retry)
        if "raw_body" in opts:
            ctype = opts.get("content_type", "text/html; charset=utf-8")
            return self._write(status, str(opts["raw_body"]).encode(), ctype, headers)
        code = int(opts.get("code", STATUS_DEFAULT_CODES.get(status, status)))
        text = opts.get("message")
        if text is None:
            text = ERROR_MESSAGES.get(code, self.responses.get(status, ("Error",))[0])
            fmt = {"to": first(form, "To") or "", "from_": first(form, "From") or "", "path": path}
            text = text.format(**fmt)
        self._write_json(status, error_body(code, str(text), status), headers)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _write_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = b"" if obj is None else json.dumps(obj, ensure_ascii=False).encode()
        self._write(status, body, JSON_CT, headers)

    def _write(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        reason = self.responses.get(status, ("",))[0]
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Date: {self.date_time_string()}",
            f"Server: {self.server_version}",
            f"Twilio-Request-Id: RQ{os.urandom(16).hex()}",
        ]
        if status != 204:
            lines += [f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
        else:
            body = b""
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if self.close_connection:
            lines.append("Connection: close")
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            self.close_connection = True
