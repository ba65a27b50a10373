"""The HTTP client under the SDK raises what requests raised, so a refused connection stays safe
to resend and anything later stays ambiguous (the channel's classification is unchanged)."""

from __future__ import annotations

import socket
from urllib.parse import urlencode

import pytest
import requests
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from notifier.channels.sms import _is_connect_failure
from notifier.channels.twilio_http import PooledHttpClient, _as_requests_error, _form


@pytest.mark.parametrize(
    ("error", "raised", "refused"),
    [
        (NewConnectionError(None, "Connection refused"), requests.ConnectionError, True),  # type: ignore[arg-type]
        (ConnectTimeoutError("connect timed out"), requests.ConnectTimeout, True),
        (ReadTimeoutError(None, "/", "read timed out"), requests.ReadTimeout, None),  # type: ignore[arg-type]
        (ProtocolError("Connection aborted."), requests.ConnectionError, False),
        (ConnectionResetError("reset by peer"), requests.ConnectionError, False),
    ],
)
def test_urllib3_errors_become_the_requests_errors_the_channel_classifies(
    error: Exception, raised: type[Exception], refused: bool | None
) -> None:
    mapped = _as_requests_error(error)
    assert type(mapped) is raised
    if refused is not None:
        assert _is_connect_failure(mapped) is refused  # type: ignore[arg-type]


def test_a_closed_port_is_a_refused_connection_safe_to_resend() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = PooledHttpClient(f"http://127.0.0.1:{port}", timeout=2.0, pool_size=1)
    with pytest.raises(requests.ConnectionError) as caught:
        client.request("POST", f"http://127.0.0.1:{port}/x", data={"To": "+15402000000"})
    assert _is_connect_failure(caught.value)
    assert client.last_headers() == {}


def test_the_proxy_and_no_proxy_of_the_environment_are_read_once_for_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    proxied = PooledHttpClient("https://api.twilio.com", timeout=2.0, pool_size=1)
    direct = PooledHttpClient("https://internal.example", timeout=2.0, pool_size=1)
    assert isinstance(proxied._pool, urllib3.ProxyManager)
    assert proxied._pool.proxy is not None and proxied._pool.proxy.port == 3128
    assert not isinstance(direct._pool, urllib3.ProxyManager)


@pytest.mark.parametrize(
    "values",
    [
        {"To": "+15402000000", "From": "+15005550006", "Body": "Closed today. Reopens 8 AM."},
        {"StatusCallback": "https://x.example/webhooks/twilio/status?a=b&c=d e"},
        {"Body": "Cerrado hoy — ¡mañana 8 AM! 😀 a+b=c/d%e~_.-*'()", "N": 3, "On": True},
        {"MediaUrl": ["https://a.example/1 2", "https://b.example/ü"], "T": ("x", "y")},
        {"é k": b"\xff\x00 raw"},
    ],
)
def test_the_form_body_is_byte_for_byte_what_urlencode_makes(values: dict[str, object]) -> None:
    assert _form(values) == urlencode(values, doseq=True)
