"""Behaviour of the fake Twilio Calls API: REST create/list/fetch/update of
``/2010-04-01/Accounts/{AC}/Calls``, and each call played out against the app's own TwiML.

A call follows a script per destination number (``FakeTwilio.script_call``): it is answered by a
``human`` (who presses the scripted keys) or a ``machine`` (a voicemail), or it ends ``busy``,
``no-answer`` or ``failed``. An answered call fetches its ``Url`` (POST, signed like every
webhook), speaks ``<Say>``, listens in ``<Gather>`` (POSTing the scripted key to its ``action``),
follows ``<Redirect>`` and stops at ``<Hangup/>`` or the end of the document. With
``MachineDetection`` and ``AsyncAmd=true`` the TwiML starts at once and the verdict
(``AnsweredBy``: ``human``, or ``machine_end_beep`` once a voicemail's greeting ends) is POSTed to
``AsyncAmdStatusCallback``; what is said while the greeting plays is lost, what follows is the
voicemail's recording. A call redirected meanwhile (``POST Calls/{sid}.json`` with ``Url``)
continues from the new TwiML. The final status goes to ``StatusCallback``.

Calls leave at ``calls_per_second`` (Twilio's default: 1 per second per account; excess calls
are queued), recorded as ``started`` times. ``FakeTwilio.calls`` holds every call with what was
said (``heard``: to a person; ``voicemail``: recorded) and the keys pressed.
"""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urljoin

from notifier_sandbox.twilio_support import (
    API_VERSION,
    E164_RE,
    ApiError,
    first,
    is_loopback_url,
    page_uri,
    post_form,
    rfc2822,
    valid_callback_url,
)

CALLS_RE = re.compile(rf"^/{API_VERSION}/Accounts/([^/]+)/Calls\.json$")
CALL_RE = re.compile(rf"^/{API_VERSION}/Accounts/([^/]+)/Calls/([^/]+)\.json$")
LOOKUP_RE = re.compile(r"^/v2/PhoneNumbers/([^/]+)$")  # Lookup v2 (lookups.twilio.com)
FORM = "application/x-www-form-urlencoded"
OUTCOMES = ("human", "machine", "busy", "no-answer", "failed")
FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
MAX_VERBS = 200  # a TwiML loop (Redirect to itself) ends the call instead of running forever


class CallsApi:
    """REST + call behaviour; relies on attributes set by ``FakeTwilio.__init__``."""

    calls_per_second = 1.0

    def _clear_calls(self) -> None:
        self._calls: dict[str, dict[str, Any]] = {}
        self._call_scripts: dict[str, list[dict[str, Any]]] = {}
        self._next_call_at = 0.0
        self._line_types: dict[str, str] = {}

    # ------------------------------------------------------------------ test controls
    def script_call(self, to: str, *outcomes: str | dict[str, Any]) -> None:
        """How the next calls to ``to`` go, one outcome per call, in order (the last repeats):
        ``"human"``, ``"machine"``, ``"busy"``, ``"no-answer"``, ``"failed"``, or a dict
        ``{"answer": "human", "keys": ["1", "9"]}`` (keys pressed at each ``<Gather>``)."""
        scripts = []
        for outcome in outcomes:
            step = {"answer": outcome} if isinstance(outcome, str) else dict(outcome)
            if step.get("answer") not in OUTCOMES:
                raise ValueError(f"unknown call outcome {step.get('answer')!r}")
            step["keys"] = list(step.get("keys", ()))
            scripts.append(step)
        with self._lock:
            self._call_scripts[to] = scripts

    def line_type(self, number: str, kind: str) -> None:
        """What Lookup says ``number`` is (``mobile``, ``landline``, ``fixedVoip``...; default
        ``mobile``)."""
        with self._lock:
            self._line_types[number] = kind

    @property
    def calls(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {sid: _copy(call) for sid, call in self._calls.items()}

    def calls_to(self, to: str) -> list[dict[str, Any]]:
        return [c for c in self.calls.values() if c["to"] == to]

    # ------------------------------------------------------------------ REST
    def _route(self, method, path, query, form, ctype, opts) -> tuple[int, Any, str | None]:
        if m := CALLS_RE.match(path):
            self._check_account(m[1], path)
            if method == "POST":
                return self._create_call(form, ctype)
            if method == "GET":
                return 200, self._list_calls(path, query), None
            raise ApiError(405, 20004)
        if m := CALL_RE.match(path):
            self._check_account(m[1], path)
            if method == "GET":
                return 200, self._public(self._call(m[2], path)), None
            if method == "POST":
                return 200, self._update_call(m[2], path, form), None
            raise ApiError(405, 20004)
        if (m := LOOKUP_RE.match(path)) and method == "GET":
            return 200, self._lookup(unquote(m[1]), query), None
        return super()._route(method, path, query, form, ctype, opts)  # type: ignore[misc]

    def _lookup(self, number: str, query: dict[str, list[str]]) -> dict[str, Any]:
        if not E164_RE.match(number):
            raise ApiError(404, 20404, path=f"/v2/PhoneNumbers/{number}")
        fields = (query.get("Fields") or [""])[0].split(",")
        with self._lock:
            kind = self._line_types.get(number, "mobile")
        line = None
        if "line_type_intelligence" in fields:
            line = {"type": kind, "carrier_name": "Fake Carrier", "mobile_country_code": "310",
                    "mobile_network_code": "000", "error_code": None}  # fmt: skip
        return {
            "calling_country_code": "1",
            "country_code": "US",
            "phone_number": number,
            "national_format": number,
            "valid": True,
            "validation_errors": [],
            "caller_name": None,
            "sim_swap": None,
            "call_forwarding": None,
            "line_status": None,
            "line_type_intelligence": line,
            "identity_match": None,
            "reassigned_number": None,
            "sms_pumping_risk": None,
            "phone_number_quality_score": None,
            "pre_fill": None,
            "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{number}",
        }

    def _create_call(self, form, ctype: str) -> tuple[int, dict, str]:
        to, from_ = first(form, "To"), first(form, "From")
        url, twiml = first(form, "Url"), first(form, "Twiml")
        if not ctype.startswith(FORM) or not to:
            raise ApiError(400, 21201, "No 'To' number is specified")
        if not from_:
            raise ApiError(400, 21213, "No 'From' number is specified")
        if not E164_RE.match(to):
            raise ApiError(400, 21211, to=to)
        if from_ not in self._owned:
            raise ApiError(400, 21210, f"The source phone number provided, {from_}, is not yet "
                           "verified for your account.")  # fmt: skip
        if not url and not twiml and not first(form, "ApplicationSid"):
            raise ApiError(400, 21205, "Url parameter is required.")
        for key in ("Url", "StatusCallback", "AsyncAmdStatusCallback"):
            value = first(form, key)
            if value is not None and not valid_callback_url(value):
                raise ApiError(400, 21205 if key == "Url" else 21609, f"Invalid {key}: {value}")
        now = self.now()
        with self._lock:
            sid = f"CA{self._rng.getrandbits(128):032x}"
            uri = f"/{API_VERSION}/Accounts/{self._account_sid}/Calls/{sid}"
            scripts = self._call_scripts.get(to) or [{"answer": "human", "keys": []}]
            script = scripts.pop(0) if len(scripts) > 1 else dict(scripts[0])
            start = max(time.monotonic(), self._next_call_at)
            self._next_call_at = start + 1 / self.calls_per_second
            call = {
                "account_sid": self._account_sid,
                "answered_by": None,
                "api_version": API_VERSION,
                "caller_name": None,
                "date_created": rfc2822(now),
                "date_updated": rfc2822(now),
                "direction": "outbound-api",
                "duration": None,
                "end_time": None,
                "forwarded_from": None,
                "from": from_,
                "from_formatted": from_,
                "group_sid": None,
                "parent_call_sid": None,
                "phone_number_sid": f"PN{self._rng.getrandbits(128):032x}",
                "price": None,
                "price_unit": "USD",
                "queue_time": "0",
                "sid": sid,
                "start_time": None,
                "status": "queued",
                "subresource_uris": {
                    "notifications": f"{uri}/Notifications.json",
                    "recordings": f"{uri}/Recordings.json",
                    "events": f"{uri}/Events.json",
                },
                "to": to,
                "to_formatted": to,
                "trunk_sid": None,
                "uri": f"{uri}.json",
                # The fake's own record (not in the JSON): what happened on the call.
                "_created_ts": now,
                "_form": {k: v[0] for k, v in form.items()},
                "_script": script,
                "_keys": list(script["keys"]),
                "_redirect": None,
                "heard": [],
                "voicemail": [],
                "greeting": [],
                "pressed": [],
                "fetched": [],
                "amd": [],
                "callbacks": [],
                "started": None,
            }
            self._calls[sid] = call
            gen = self._gen
            created = self._public(call)
        self._tracker.add()
        threading.Thread(
            target=self._play, args=(sid, start, gen), name=f"fake-call-{sid[:8]}", daemon=True
        ).start()
        return 201, created, sid

    def _call(self, sid: str, path: str) -> dict[str, Any]:
        with self._lock:
            call = self._calls.get(sid)
            if call is None:
                raise ApiError(404, 20404, path=path)
            return call

    def _public(self, call: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return {k: v for k, v in call.items() if not k.startswith("_") and k not in _RECORD}

    def _update_call(self, sid: str, path: str, form) -> dict[str, Any]:
        call = self._call(sid, path)
        with self._lock:
            if call["status"] in FINAL:
                raise ApiError(400, 21220, "Call is not in-progress. Cannot redirect.")
            if (status := first(form, "Status")) is not None:
                if status not in ("canceled", "completed"):
                    raise ApiError(400, 20001, f"Invalid Status: {status}")
                call["_redirect"] = ("hangup", status)
            elif (url := first(form, "Url")) is not None:
                call["_redirect"] = ("url", url)
            elif (twiml := first(form, "Twiml")) is not None:
                call["_redirect"] = ("twiml", twiml)
            call["date_updated"] = rfc2822(self.now())
        return self._public(call)

    def _list_calls(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        q = {k: v[0] for k, v in query.items() if v}
        size = min(max(int(q.get("PageSize", 50)), 1), 1000)
        after = q.get("StartTime>")
        with self._lock:
            items = [
                self._public(c)
                for c in reversed(self._calls.values())
                if (not q.get("To") or c["to"] == q["To"])
                and (not q.get("From") or c["from"] == q["From"])
                and (not after or _iso_ts(after) <= c["_created_ts"])
            ][:size]
        base = {k: q.get(k) for k in ("To", "From", "StartTime>")} | {"PageSize": size}
        return {
            "calls": items,
            "first_page_uri": page_uri(path, {**base, "Page": 0}),
            "next_page_uri": None,
            "previous_page_uri": None,
            "page": 0,
            "page_size": size,
            "start": 0,
            "end": max(len(items), 1) - 1,
            "uri": page_uri(path, {**base, "Page": 0}),
        }

    # ------------------------------------------------------------------ playing a call
    def _play(self, sid: str, start: float, gen: int) -> None:
        conns: dict = {}
        try:
            time.sleep(max(0.0, start - time.monotonic()))  # queued behind the account's rate
            with self._lock:
                call = self._calls[sid]
                call["started"] = time.monotonic()
                answer = call["_script"]["answer"]
            if answer in ("busy", "no-answer", "failed"):
                self._finish(sid, answer, conns, gen)
                return
            with self._lock:
                call["status"] = "in-progress"
                call["start_time"] = rfc2822(self.now())
                form = call["_form"]
            machine = answer == "machine"
            # A machine's greeting plays while the TwiML starts: those words are lost.
            where = "greeting" if machine else "heard"
            amd = form.get("MachineDetection") and (form.get("AsyncAmd") or "").lower() == "true"
            document = self._fetch(sid, form.get("Url"), conns, gen) if form.get("Url") else None
            if document is None and form.get("Twiml"):
                document = form["Twiml"]
            if machine:
                self._run(sid, document, where, conns, gen, budget=1)
                if amd:
                    self._amd(sid, "machine_end_beep", conns, gen)
                where = "voicemail"
                document = self._redirected(sid, conns, gen)
                if document is None:  # nobody restarted the message: the rest of it is recorded
                    document = self._remaining(sid)
                self._run(sid, document, where, conns, gen)
            else:
                if amd:
                    self._amd(sid, "human", conns, gen)
                self._run(sid, document, where, conns, gen)
            self._finish(sid, "completed", conns, gen)
        except Exception as exc:  # the fake must never hang a test: end the call as failed
            with self._lock:
                self._calls.get(sid, {}).setdefault("errors", []).append(repr(exc))
            self._finish(sid, "failed", conns, gen)
        finally:
            for conn in conns.values():
                conn.close()
            self._tracker.done()

    def _remaining(self, sid: str) -> str | None:
        with self._lock:
            return self._calls[sid].get("_rest")

    def _redirected(self, sid: str, conns: dict, gen: int) -> str | None:
        with self._lock:
            redirect, self._calls[sid]["_redirect"] = self._calls[sid]["_redirect"], None
        if redirect is None:
            return None
        kind, value = redirect
        if kind == "url":
            return self._fetch(sid, value, conns, gen)
        if kind == "twiml":
            return value
        return "<Response><Hangup/></Response>"

    def _run(
        self,
        sid: str,
        document: str | None,
        where: str,
        conns: dict,
        gen: int,
        budget: int | None = None,
    ) -> None:
        """Play a TwiML document. ``budget``: stop after that many top-level verbs (a machine's
        greeting), keeping the rest of the document to be recorded if nobody redirects."""
        verbs = 0
        while document is not None and verbs < MAX_VERBS:
            root = ET.fromstring(document)
            if root.tag != "Response":
                raise ValueError(f"TwiML root is <{root.tag}>, not <Response>")
            following: str | None = None
            children = list(root)
            for index, verb in enumerate(children):
                if budget is not None and index >= budget:
                    rest = ET.Element("Response")
                    rest.extend(children[index:])
                    with self._lock:
                        self._calls[sid]["_rest"] = ET.tostring(rest, encoding="unicode")
                    return
                verbs += 1
                with self._lock:
                    if self._calls[sid]["_redirect"] is not None and where != "greeting":
                        following = self._redirected(sid, conns, gen)
                        break
                if verb.tag == "Say":
                    self._say(sid, verb, where)
                elif verb.tag == "Pause":
                    continue
                elif verb.tag == "Hangup":
                    return
                elif verb.tag == "Redirect":
                    following = self._fetch(sid, urljoin(self._base(sid), verb.text or ""), conns,
                                            gen)  # fmt: skip
                    break
                elif verb.tag == "Gather":
                    for inner in verb:
                        if inner.tag == "Say":
                            self._say(sid, inner, where)
                    key = self._key(sid, where)
                    if key is not None:
                        action = verb.get("action") or self._base(sid)
                        following = self._fetch(sid, urljoin(self._base(sid), action), conns, gen,
                                                {"Digits": key})  # fmt: skip
                        break
                else:
                    raise ValueError(f"unsupported TwiML verb <{verb.tag}>")
            else:
                return
            document = following
        with self._lock:
            self._calls[sid]["errors"] = ["too many TwiML verbs: a loop?"]

    def _say(self, sid: str, verb: ET.Element, where: str) -> None:
        said = {
            "text": " ".join((verb.text or "").split()),
            "language": verb.get("language"),
            "voice": verb.get("voice"),
        }
        with self._lock:
            self._calls[sid][where].append(said)

    def _key(self, sid: str, where: str) -> str | None:
        with self._lock:
            keys = self._calls[sid]["_keys"]
            if where != "heard" or not keys:
                return None  # machines press nothing; a person without keys just listens
            key = keys.pop(0)
            self._calls[sid]["pressed"].append(key)
            return key

    def _base(self, sid: str) -> str:
        with self._lock:
            return self._calls[sid]["_form"].get("Url") or ""

    def _params(self, call: dict[str, Any], status: str) -> dict[str, str]:
        return {
            "AccountSid": self._account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call["sid"],
            "CallStatus": status,
            "Called": call["to"],
            "Caller": call["from"],
            "Direction": "outbound-api",
            "From": call["from"],
            "To": call["to"],
        }

    def _post(
        self, sid: str, url: str, params: dict[str, str], conns: dict, gen: int
    ) -> str | None:
        if gen != self._gen:
            return None
        signature = self._validator.compute_signature(url, params)
        record = {"url": url, "params": params, "signature": signature, "status": None}
        if not is_loopback_url(url):
            record["error"] = "refused: non-loopback URL"
            status, body = None, None
        else:
            headers = {
                "Content-Type": f"{FORM}; charset=utf-8",
                "User-Agent": "TwilioProxy/1.1",
                "X-Twilio-Signature": signature,
            }
            status, body, error = post_form(conns, url, params, headers, self.callback_timeout)
            record.update(status=status, error=error)
        with self._lock:
            self._calls[sid]["callbacks"].append(record)
        return body if status == 200 else None

    def _fetch(self, sid: str, url: str, conns: dict, gen: int, extra: dict | None = None):
        with self._lock:
            call = self._calls[sid]
            params = self._params(call, "in-progress") | (extra or {})
            call["fetched"].append(url)
        return self._post(sid, url, params, conns, gen)

    def _amd(self, sid: str, verdict: str, conns: dict, gen: int) -> None:
        with self._lock:
            call = self._calls[sid]
            call["answered_by"] = verdict
            call["amd"].append(verdict)
            url = call["_form"].get("AsyncAmdStatusCallback")
            params = self._params(call, "in-progress") | {"AnsweredBy": verdict}
        if url:
            self._post(sid, url, params, conns, gen)

    def _finish(self, sid: str, status: str, conns: dict, gen: int) -> None:
        with self._lock:
            call = self._calls[sid]
            if call["status"] in FINAL:
                return
            call["status"] = status
            answered = call["start_time"] is not None
            stamp = rfc2822(self.now())
            call["end_time"] = stamp
            call["date_updated"] = stamp
            call["duration"] = "40" if answered else "0"
            call["price"] = "-0.01400" if answered else None
            params = self._params(call, status)
            params["CallDuration"] = call["duration"]
            params["SequenceNumber"] = "0"
            params["Timestamp"] = stamp
            url = call["_form"].get("StatusCallback")
        if url:
            self._post(sid, url, params, conns, gen)


_RECORD = ("heard", "voicemail", "greeting", "pressed", "fetched", "amd", "callbacks", "started",
           "errors")  # fmt: skip


def _copy(call: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in call.items()}


def _iso_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
