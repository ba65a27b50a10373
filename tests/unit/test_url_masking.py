"""Passwords and tokens in URLs are masked wherever a URL is printed or logged."""

from __future__ import annotations

import pytest

from notifier.domain.urls import mask_url_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///var/notifier.db", "sqlite:///var/notifier.db"),
        ("postgresql://notifier@db.example/notifier", "postgresql://notifier@db.example/notifier"),
        ("postgresql://u:hunter2@db.example:5432/n", "postgresql://u:***@db.example:5432/n"),
        ("postgresql://u:p%40ss@db/n", "postgresql://u:***@db/n"),
        ("postgresql://u:p@ss/w?rd@db/n", "postgresql://u:***@db/n"),  # raw @ / ? in it
        ("postgresql://:hunter2@db/n", "postgresql://:***@db/n"),
        ("postgresql://u@h/db?password=hunter2", "postgresql://u@h/db?password=***"),
        (
            "postgresql://u@h/db?sslmode=require&PassWord=a&pwd=b&sslpassword=c&api_key=d"
            "&access_token=e&client_secret=f#frag",
            "postgresql://u@h/db?sslmode=require&PassWord=***&pwd=***&sslpassword=***"
            "&api_key=***&access_token=***&client_secret=***#frag",
        ),
        ("https://user:pw@notices.example.org/x?q=1", "https://user:***@notices.example.org/x?q=1"),
        ("host=db user=u password=hunter2 dbname=n", "host=db user=u password=*** dbname=n"),
        ("postgresql://u@h/db?password=", "postgresql://u@h/db?password="),
    ],
)
def test_passwords_in_userinfo_and_query_are_masked(url: str, shown: str) -> None:
    assert mask_url_secrets(url) == shown
