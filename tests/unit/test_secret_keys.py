"""``NOTIFIER_SECRET_KEY`` must be long and not trivially guessable; the error names the
variable and never repeats the value."""

from __future__ import annotations

import random
import string

import pytest

from notifier.domain.secret_keys import weakness
from notifier.errors import ConfigurationError
from notifier.settings import load_settings

STRONG = [
    "kF3v9QmZt0r1xYpL2wHs8uNcJd6Ea5Bg",  # 32 random letters and digits
    "9f2c4e71b0a85d36e1c7f04a92b6d8e3",  # `openssl rand -hex 16`
    "Xq7_pLr2-M0nVb8cT4zKj1sW6yHd3aFe9uGiN5oR-tQ_wEx0ZlYmBvC4kJ2hPg7s",  # token_urlsafe(48)
]
WEAK = {
    "passwordpassword": "at least 32 characters",
    " " * 16: "at least 32 characters",
    " " * 40: "distinct characters",
    "a" * 40: "distinct characters",
    "ab" * 20: "distinct characters",
    "Password123!Password123!Password123!": "repeats",
    "passwordpassword1234567890qwerty": "common passwords",
    "test-secret-key-0123456789abcdef": "common passwords",
    "changeme-changeme-letmein-admin-12345": "common passwords",
    "abcdefghijklmnopqrstuvwxyz0123456789": "common passwords",
    # Made-up keys a person might type: long and varied, but words.
    "CovaSpineAndPainCenterSecretKey2025!": "reads like words",
    "correct horse battery staple 2025": "reads like words",
    "Xk9-correct-horse-battery-staple-2025-Qz": "reads like words",
    "MyClinicNotifierKeyForProduction2025": "common passwords",
}


@pytest.mark.parametrize("key", STRONG)
def test_a_random_key_is_accepted(key: str) -> None:
    assert weakness(key) is None
    settings = load_settings(secret_key=key)
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == key


@pytest.mark.parametrize(("key", "reason"), list(WEAK.items()))
def test_a_weak_key_is_refused_with_the_reason(key: str, reason: str) -> None:
    found = weakness(key)
    assert found is not None and reason in found
    with pytest.raises(ConfigurationError) as refused:
        load_settings(secret_key=key)
    message = str(refused.value)
    assert "NOTIFIER_SECRET_KEY" in message and reason in message
    if key.strip():
        assert key not in message


def test_the_environment_variable_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_SECRET_KEY", "passwordpassword")
    with pytest.raises(ConfigurationError, match="NOTIFIER_SECRET_KEY"):
        load_settings()


def test_keys_made_the_way_the_docs_say_are_accepted_every_time() -> None:
    """Seeded random keys of the shortest lengths the docs suggest (token_urlsafe(24), 32
    characters; `openssl rand -hex 16`): none is taken for words."""
    rng = random.Random(24)
    urlsafe = string.ascii_letters + string.digits + "-_"
    for _ in range(3000):
        assert weakness("".join(rng.choices(urlsafe, k=32))) is None
        assert weakness("".join(rng.choices("0123456789abcdef", k=32))) is None
