"""Schemathesis over /openapi.json against the real server: no input yields a 5xx.

Every operation (API, webhooks, unsubscribe, health) gets generated requests, with a genuine
API token so the fuzzing reaches past authentication. Derandomized and small, on both databases.
Schemathesis's own pytest loader (``from_fixture``) does not run under pytest 9, so the
operations are driven here with Hypothesis and the schema's own strategies.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.web import Web

EXAMPLES = 25


@pytest.fixture
def web(web: Web) -> Web:
    """The shared served app (reference location and patients), plus this file's own setup."""
    web.app.notices.create(
        OPERATOR,
        NoticeRequest(
            location="cova", starts="2025-02-19 12:30", ends="2025-02-21 00:00", reason="storm"
        ),
    )
    return web


def test_no_generated_request_makes_the_server_fail(web: Web) -> None:
    token = web.app.accounts.create_token("schemathesis")
    schema = schemathesis.openapi.from_url(web.server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    calls: dict[str, int] = {}
    statuses: set[int] = set()

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(
                base_url=web.server.url,
                headers={"Authorization": f"Bearer {token}"},
                checks=[not_a_server_error],
            )
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
            statuses.add(response.status_code)

        run()

    assert len(calls) == len(operations)  # every operation was exercised
    assert all(status < 500 for status in statuses)
    assert {200, 422} <= statuses
