"""Behaviour of the fake Twilio Messages API: REST create/list/fetch/update/delete, the status
engine steps, status callbacks, inbound messages and fault matching.

``MessagesApi`` is a mixin: ``FakeTwilio`` (twilio_server.py) owns the state and config."""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from notifier_sandbox.twilio_support import (
    API_VERSION,
    AUTO_REPLIES,
    DEFAULT_FATE_CODES,
    E164_RE,
    ERROR_MESSAGES,
    HELP_KEYWORDS,
    MAGIC_FROM,
    MAGIC_TO,
    MAX_BODY_CHARS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    SERVICE_SID_RE,
    TOLL_FREE_PREFIXES,
    ApiError,
    count_segments,
    date_matches,
    first,
    is_loopback_url,
    page_uri,
    parse_filter_date,
    post_form,
    rfc2822,
    valid_callback_url,
)

PREFIX = f"/{API_VERSION}/Accounts/"
MESSAGES_RE = re.compile(rf"^/{API_VERSION}/Accounts/([^/]+)/Messages\.json$")
MESSAGE_RE = re.compile(rf"^/{API_VERSION}/Accounts/([^/]+)/Messages/([^/]+)\.json$")
MEDIA_RE = re.compile(rf"^/{API_VERSION}/Accounts/([^/]+)/Messages/([^/]+)/Media\.json$")
FORM = "application/x-www-form-urlencoded"
JSON_CT = "application/json; charset=utf-8"

_DATE_FILTERS = (("DateSent", "="), ("DateSent<", "<"), ("DateSent>", ">"))


@dataclass(slots=True)
class _Meta:
    """Internal per-message state that is not part of the public JSON."""

    created_ts: float
    steps: list[str]
    scope: str | None
    service: str | None = None
    status_callback: str | None = None
    fate_code: int | None = None
    sent_ts: float | None = None
    send_wait: float = 0.0
    reorder: bool = False
    duplicate: bool = False
    held: list[tuple] = field(default_factory=list)


class MessagesApi:
    """REST + webhook behaviour; relies on attributes set by ``FakeTwilio.__init__``."""

    def _authenticate(self, header: str | None) -> str:
        user = pw = None
        if header and header[:6].lower() == "basic ":
            try:
                user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user = None
        if user != self._account_sid or pw != self._auth_token:
            raise ApiError(401, 20003)
        return user

    def _route(self, method, path, query, form, ctype, opts) -> tuple[int, Any, str | None]:
        if m := MESSAGES_RE.match(path):
            self._check_account(m[1], path)
            if method == "POST":
                return self._create(form, ctype, opts)
            if method == "GET":
                return 200, self._list(path, query), None
        elif m := MESSAGE_RE.match(path):
            self._check_account(m[1], path)
            if method == "GET":
                return 200, self._message_copy(m[2], path), None
            if method == "POST":
                return 200, self._update(m[2], path, form), None
            if method == "DELETE":
                return 204, None, self._delete(m[2], path)
        elif (m := MEDIA_RE.match(path)) and method == "GET":
            self._check_account(m[1], path)
            self._message_copy(m[2], path.replace("/Media.json", ".json"))
            uri = page_uri(path, {"PageSize": 50, "Page": 0})
            meta = {"first_page_uri": uri, "next_page_uri": None, "previous_page_uri": None}
            return 200, {"media_list": [], **meta, "page": 0, "page_size": 50, "start": 0,
                         "end": 0, "uri": uri}, None  # fmt: skip
        else:
            raise ApiError(404, 20404, path=path)
        raise ApiError(405, 20004)

    def _check_account(self, sid: str, path: str) -> None:
        if sid != self._account_sid:
            raise ApiError(404, 20404, path=path)

    def _create(self, form, ctype: str, opts: dict[str, Any]) -> tuple[int, dict, str]:
        to, from_ = first(form, "To"), first(form, "From")
        service, body = first(form, "MessagingServiceSid"), first(form, "Body")
        if not ctype.startswith(FORM) or not to:
            raise ApiError(400, 21604)
        if not from_ and not service:
            raise ApiError(400, 21603)
        if not body and not form.get("MediaUrl") and not first(form, "ContentSid"):
            raise ApiError(400, 21602)
        if body and len(body) > MAX_BODY_CHARS:
            raise ApiError(400, self.BODY_TOO_LONG_CODE, ERROR_MESSAGES[21617])
        validity = 36000
        if (vp := first(form, "ValidityPeriod")) is not None:
            if not vp.isdigit() or not 1 <= int(vp) <= 36000:
                raise ApiError(400, self.VALIDITY_PERIOD_CODE, ERROR_MESSAGES[21624])
            validity = int(vp)
        callback = first(form, "StatusCallback")
        if callback is not None and not valid_callback_url(callback):
            raise ApiError(400, 21609)
        svc = None
        if service:
            svc = self._services.get(service)
            if not SERVICE_SID_RE.match(service) or svc is None:
                raise ApiError(404, 20404, path=f"/Services/{service}")
        if from_:
            if from_ in MAGIC_FROM:
                raise ApiError(400, MAGIC_FROM[from_], from_=from_)
            pool = svc.get("senders", ()) if svc else self._owned
            if from_ not in pool and from_ not in self._senders:
                raise ApiError(400, 21606, from_=from_)
        if not E164_RE.match(to) or to == from_:
            raise ApiError(400, 21211, to=to)
        if to in MAGIC_TO:
            raise ApiError(400, MAGIC_TO[to], to=to, from_=from_ or "")
        scheduled = first(form, "ScheduleType") == "fixed"
        send_at = None
        if scheduled:
            if not service:
                raise ApiError(400, 35118)
            try:
                send_at = parse_filter_date(first(form, "SendAt") or "")
            except ValueError:
                raise ApiError(400, 35111, "SendAt is invalid") from None
        fate = opts.get("fate") or "delivered"
        fate_code = opts.get("error_code") or DEFAULT_FATE_CODES.get(fate)
        segments = count_segments(body or "")
        mono = time.monotonic()
        with self._lock:
            if any(to.startswith(p) for p in self._geo_blocked):
                raise ApiError(400, 21408, to=to)
            scope = service or from_
            if (to, scope) in self._opt_outs or (to, "*") in self._opt_outs:
                raise ApiError(400, 21610)
            wait = 0.0
            if from_ and not service and (self.enforce_queue_limit or self.enforce_throughput):
                start = max(mono, self._busy_until.get(from_, 0.0))
                finish = start + segments / self._senders.get(from_, 1.0)
                if self.enforce_queue_limit and finish - mono > self.queue_limit_seconds:
                    raise ApiError(400, 21611)
                wait = start - mono if self.enforce_throughput else 0.0
                if wait > validity:  # expires in the queue: uses no sending capacity
                    fate, fate_code, wait = "failed", 30036, float(validity)
                else:
                    self._busy_until[from_] = finish
            now = self.now()
            status = "scheduled" if scheduled else "accepted" if service else "queued"
            msg = self._new_message(
                now,
                to=to,
                body=body or "",
                status=status,
                direction="outbound-api",
                messaging_service_sid=service,
                num_media=str(len(form.get("MediaUrl", []))),
                num_segments=str(segments) if status == "queued" else "0",
                **{"from": from_ if status == "queued" else None},
            )
            sid = msg["sid"]
            steps = [] if status == "queued" else ["queued"]
            if fate == "failed":
                steps.append("failed")
            else:
                steps += ["sending", "sent"] + ([fate] if fate != "sent" else [])
            meta = _Meta(
                created_ts=now,
                steps=steps,
                scope=scope,
                service=service,
                status_callback=callback or (svc or {}).get("status_callback"),
                fate_code=fate_code if fate in ("failed", "undelivered") else None,
                send_wait=wait,
                reorder=bool(opts.get("reorder", self.reorder)),
                duplicate=bool(opts.get("duplicate", self.duplicate)),
            )
            self._meta[sid] = meta
            reply = dict(msg)
            gen = self._gen
        step = partial(self._advance, sid, gen)
        if send_at is not None:
            at = send_at.timestamp() if isinstance(send_at, datetime) else now
            self._engine.schedule(max(0.0, at - now), step, counted=False)
        else:
            self._engine.schedule(
                self.callback_delay + (wait if steps[0] in ("sending", "failed") else 0), step
            )
        return 201, reply, sid

    # ------------------------------------------------------------------ rate limit
    def _rate_charge(self, form, arrived: float) -> tuple[str, float] | None:
        """Charge a create's segments, at its arrival, to its sender's bucket (GCRA: the bucket
        holds ``rate_limit_burst`` segments and refills at ``rate_limit`` a second); None when no
        limit is set. Over the limit: ApiError 429/20429, counted, nothing charged. A message of
        more segments than the burst goes only when its sender's bucket is full."""
        rate = self.rate_limit
        if not rate:
            return None
        key = self._account_sid
        if self.rate_limit_scope == "sender":
            key = first(form, "From") or first(form, "MessagingServiceSid") or key
        cost = count_segments(first(form, "Body") or "")
        burst = max(self.rate_limit_burst or max(1.0, rate), cost)
        with self._lock:
            full_at = max(self._rate_tat.get(key, arrived), arrived)
            if (full_at - arrived) * rate + cost > burst + 1e-9:
                self._rate_limited[key] += 1
                raise ApiError(429, 20429)
            self._rate_tat[key] = full_at + cost / rate
        return key, cost / rate

    def _rate_refund(self, charge: tuple[str, float]) -> None:
        """Give a charge back: the create made no message (refused, faulted or dropped)."""
        key, seconds = charge
        with self._lock:
            if key in self._rate_tat:
                self._rate_tat[key] -= seconds

    def _new_message(self, now: float, **fields: Any) -> dict[str, Any]:
        """Insert a message with every §8.4 key (caller holds the lock)."""
        sid = f"SM{self._rng.getrandbits(128):032x}"
        uri = f"{PREFIX}{self._account_sid}/Messages/{sid}"
        stamp = rfc2822(now)
        msg = {
            "account_sid": self._account_sid,
            "api_version": API_VERSION,
            "body": "",
            "date_created": stamp,
            "date_sent": None,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": None,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": None,
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": None,
            "uri": f"{uri}.json",
        }
        msg.update(fields)
        self._messages[sid] = msg
        return msg

    def _advance(self, sid: str, gen: int) -> None:
        """Apply the next status of message ``sid``; schedule the following one; emit callback."""
        with self._lock:
            meta, msg = self._meta.get(sid), self._messages.get(sid)
            if gen != self._gen or not meta or not msg or not meta.steps:
                return
            if msg["status"] == "canceled":
                meta.steps.clear()
                return
            status = meta.steps.pop(0)
            now = self.now()
            msg["status"], msg["date_updated"] = status, rfc2822(now)
            if status == "queued" and msg["from"] is None:
                pool = self._services.get(meta.service or "", {}).get("senders") or [
                    self.from_number
                ]
                msg["from"], msg["num_segments"] = pool[0], str(count_segments(msg["body"]))
            if status == "sent":
                meta.sent_ts, msg["date_sent"] = now, rfc2822(now)
                msg["price"], msg["price_unit"] = f"-{0.0079 * int(msg['num_segments']):.5f}", "USD"
            if status in ("failed", "undelivered"):
                msg["error_code"] = meta.fate_code
                msg["error_message"] = ERROR_MESSAGES.get(meta.fate_code or 0, "Delivery failed")
            jobs: list[tuple] = []
            if meta.status_callback:
                params = self._callback_params(msg, meta, now)
                token = str(uuid.uuid4())
                jobs.append((meta.status_callback, params, token, False))
                if meta.duplicate:
                    jobs.append((meta.status_callback, params, token, True))
                if meta.reorder:
                    meta.held.extend(jobs)
                    jobs = []
                    if not meta.steps:
                        jobs, meta.held = meta.held, []
                        self._order_rng.shuffle(jobs)
            delay = self.callback_delay
            if meta.steps and meta.steps[0] in ("sending", "failed"):
                delay, meta.send_wait = delay + meta.send_wait, 0.0
            more = bool(meta.steps)
        if more:
            self._engine.schedule(delay, partial(self._advance, sid, gen))
        for url, params, token, dup in jobs:
            self._send_webhook(sid, url, params, token, dup, gen)

    def _callback_params(self, msg: dict, meta: _Meta, now: float) -> dict[str, str]:
        params = {
            "AccountSid": self._account_sid,
            "ApiVersion": API_VERSION,
            "From": msg["from"] or "",
            "MessageSid": msg["sid"],
            "MessageStatus": msg["status"],
            "SmsSid": msg["sid"],
            "SmsStatus": msg["status"],
            "To": msg["to"],
        }
        if meta.service:
            params["MessagingServiceSid"] = meta.service
        if msg["status"] in ("failed", "undelivered"):
            params["ErrorCode"] = str(msg["error_code"])
            params["ErrorMessage"] = msg["error_message"] or ""
        if msg["status"] in ("delivered", "undelivered"):
            params["RawDlrDoneDate"] = time.strftime("%y%m%d%H%M", time.gmtime(now))
        return params

    def _send_webhook(self, sid, url, params, token, dup, gen) -> None:
        record = {
            "url": url,
            "params": params,
            "signature": self._validator.compute_signature(url, params),
            "idempotency_token": token,
            "message_sid": sid,
            "message_status": params.get("MessageStatus"),
            "duplicate": dup,
            "status": None,
            "error": None,
            "response_body": None,
            "time": None,
        }
        if not is_loopback_url(url):
            record.update(error="refused: non-loopback callback URL", time=self.now())
            with self._lock:
                self._callbacks.append(record)
            return
        if params.get("MessageStatus") in self.lost_callbacks:
            record.update(error="lost in transit (test control)", time=self.now())
            with self._lock:
                self._callbacks.append(record)
            return
        headers = {
            "Content-Type": f"{FORM}; charset=utf-8",
            "User-Agent": "TwilioProxy/1.1",
            "X-Twilio-Signature": record["signature"],
            "I-Twilio-Idempotency-Token": token,
        }

        def job(conns: dict) -> None:
            if gen != self._gen:  # reset() since: drop silently
                return
            status, body, err = post_form(conns, url, params, headers, self.callback_timeout)
            record.update(status=status, response_body=body, error=err, time=self.now())
            with self._lock:
                if gen == self._gen:
                    self._callbacks.append(record)

        self._dispatcher.submit(sid, job)

    def _message_copy(self, sid: str, path: str) -> dict[str, Any]:
        with self._lock:
            msg = self._messages.get(sid)
            if msg is None:
                raise ApiError(404, 20404, path=path)
            return dict(msg)

    def _update(self, sid: str, path: str, form) -> dict[str, Any]:
        with self._lock:
            msg, meta = self._messages.get(sid), self._meta.get(sid)
            if msg is None or meta is None:
                raise ApiError(404, 20404, path=path)
            if (new_status := first(form, "Status")) is not None:
                if new_status != "canceled" or msg["status"] != "scheduled":
                    raise ApiError(400, 21220, f"Cannot change status of {sid} to '{new_status}'")
                msg["status"] = "canceled"
                meta.steps.clear()
            if (new_body := first(form, "Body")) is not None:
                if new_body != "":
                    raise ApiError(400, 20001, "Body can only be redacted (set to '')")
                msg["body"] = ""
            msg["date_updated"] = rfc2822(self.now())
            return dict(msg)

    def _delete(self, sid: str, path: str) -> None:
        with self._lock:
            meta = self._meta.get(sid)
            if sid not in self._messages or meta is None:
                raise ApiError(404, 20404, path=path)
            if meta.steps and self._messages[sid]["status"] != "canceled":
                raise ApiError(400, 20009)
            del self._messages[sid], self._meta[sid]

    def _list(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        q = {k: v[0] for k, v in query.items() if v}
        to, from_ = q.get("To"), q.get("From")
        try:
            ops = [(op, parse_filter_date(q[k])) for k, op in _DATE_FILTERS if q.get(k)]
            size = min(max(int(q.get("PageSize", 50)), 1), 1000)
            page = max(int(q.get("Page", 0)), 0)
        except ValueError as exc:
            raise ApiError(400, 20001, f"Invalid parameter: {exc}") from None
        token = q.get("PageToken")
        with self._lock:
            items = []
            for sid in reversed(self._messages):
                msg = self._messages[sid]
                if (to and msg["to"] != to) or (from_ and msg["from"] != from_):
                    continue
                if ops:
                    meta = self._meta[sid]
                    ts = meta.sent_ts if meta.sent_ts is not None else meta.created_ts
                    if not all(date_matches(ts, op, wanted) for op, wanted in ops):
                        continue
                items.append(msg)
            start = page * size
            if token and token.startswith("PA"):
                after = token[2:]
                for i, msg in enumerate(items):
                    if msg["sid"] == after:
                        start = i + 1
                        break
            chunk = [dict(m) for m in items[start : start + size]]
        base = {k: q.get(k) for k in ("To", "From", "DateSent", "DateSent<", "DateSent>")}
        base["PageSize"] = size
        has_next = start + size < len(items)
        return {
            "messages": chunk,
            "first_page_uri": page_uri(path, {**base, "Page": 0}),
            "next_page_uri": page_uri(
                path, {**base, "Page": page + 1, "PageToken": f"PA{chunk[-1]['sid']}"}
            )
            if has_next and chunk
            else None,
            "previous_page_uri": page_uri(path, {**base, "Page": page - 1}) if page else None,
            "page": page,
            "page_size": size,
            "start": start,
            "end": start + max(len(chunk), 1) - 1,
            "uri": page_uri(path, {**base, "Page": page, "PageToken": token}),
        }

    # ------------------------------------------------------------------ inbound
    def inbound(self, from_: str, to: str, body: str, url: str | None = None) -> dict[str, Any]:
        """Simulate an SMS from ``from_`` to our number ``to``: keyword opt-out handling (§8.6),
        an inbound Message, and a signed webhook to ``url`` (or the configured inbound URL).
        Returns the webhook record (``status``/``response_body`` hold the app's reply)."""
        service = next((k for k, v in self._services.items() if to in v.get("senders", ())), None)
        svc = self._services.get(service or "", {})
        keyword = body.strip().upper()
        short_code = not to.startswith("+")
        opt_type = None
        with self._lock:
            now = self.now()
            segments = count_segments(body)
            msg = self._new_message(
                now,
                to=to,
                body=body,
                status="received",
                direction="inbound",
                messaging_service_sid=service,
                num_segments=str(segments),
                date_sent=rfc2822(now),
                **{"from": from_},
            )
            sid = msg["sid"]
            self._meta[sid] = _Meta(created_ts=now, steps=[], scope=None, sent_ts=now)
            scope = service or to
            if not short_code or service:
                if keyword in OPT_OUT_KEYWORDS:
                    opt_type = "STOP"
                    self._opt_outs.add((from_, scope))
                elif keyword in OPT_IN_KEYWORDS:
                    if not (keyword == "YES" and to.startswith(TOLL_FREE_PREFIXES)):
                        opt_type = "START"
                        self._opt_outs.discard((from_, scope))
                elif keyword in HELP_KEYWORDS:
                    opt_type = "HELP"
                if opt_type:
                    reply = {"to": from_, "from": to, "body": AUTO_REPLIES[opt_type]}
                    self._auto_replies.append({**reply, "keyword": keyword, "in_reply_to": sid})
        target = url or self.inbound_urls.get(to) or svc.get("inbound_url") or self.inbound_url
        params = {
            "AccountSid": self._account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": from_,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": str(segments),
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": to,
        }
        if service:
            params["MessagingServiceSid"] = service
            if opt_type and svc.get("advanced_opt_out"):
                params["OptOutType"] = opt_type
        record: dict[str, Any] = {"url": target, "params": params, "message_sid": sid,
                                  "opt_out_type": opt_type, "signature": None, "status": None,
                                  "response_body": None, "error": None}  # fmt: skip
        if target:
            record["signature"] = self._validator.compute_signature(target, params)
            if is_loopback_url(target):
                headers = {
                    "Content-Type": f"{FORM}; charset=utf-8",
                    "User-Agent": "TwilioProxy/1.1",
                    "X-Twilio-Signature": record["signature"],
                    "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
                }
                status, text, err = post_form({}, target, params, headers, self.callback_timeout)
                record.update(status=status, response_body=text, error=err)
            else:
                record["error"] = "refused: non-loopback webhook URL"
        with self._lock:
            self._inbound.append(record)
        return record

    # ------------------------------------------------------------------ fault matching
    def _match_fault(self, method: str, path: str, form, query: str = "") -> dict[str, Any] | None:
        with self._lock:
            for rule in self._faults:
                if rule["times"] is not None and rule["times"] <= 0:
                    continue
                m, rx = rule["match"], rule["_re"]
                if rule["create_only"] and not (method == "POST" and MESSAGES_RE.match(path)):
                    continue
                if m.get("method") and m["method"].upper() != method:
                    continue
                if "path_regex" in rx and not rx["path_regex"].search(path):
                    continue
                if "query_regex" in rx and not rx["query_regex"].search(query):
                    continue
                if m.get("to") and first(form, "To") != m["to"]:
                    continue
                if m.get("from_") and first(form, "From") != m["from_"]:
                    continue
                if "body_regex" in rx and not rx["body_regex"].search(first(form, "Body") or ""):
                    continue
                if rule["times"] is not None:
                    rule["times"] -= 1
                rule["hits"] += 1
                return rule
        return None

    def _record(self, rec: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(rec)
