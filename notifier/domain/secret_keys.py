"""What makes ``NOTIFIER_SECRET_KEY`` too weak: four plain rules a person can check by eye.

1. Shorter than 32 characters.
2. Fewer than 8 distinct characters (spaces only, one repeated character, "abab…").
3. A shorter pattern repeated ("Password123!Password123!…").
4. Mostly guessable: after taking out every common password or word from a small built-in list
   and every run of three or more characters along the alphabet, the digits or a keyboard row
   (forwards or backwards), fewer than 16 characters are left.

A word list finds keys like these offline in milliseconds; ``secrets.token_urlsafe(48)``
(``notifier secret generate``) passes every rule.
"""

from __future__ import annotations

MIN_LENGTH = 32
MIN_DISTINCT = 8
MIN_UNGUESSABLE = 16
HOW_TO_FIX = "`notifier secret generate` prints a strong one"

COMMON = frozenset(
    """
    password passw0rd p@ssw0rd p@ssword pass secret secretkey changeme changeit letmein welcome
    admin administrator root user guest login access default example sample test testing demo
    master dragon monkey shadow sunshine princess football baseball superman batman trustno1
    iloveyou hello whatever freedom starwars summer winter spring autumn django flask insecure
    development production staging local localhost notifier clinic closure patient token
    """.split()  # noqa: SIM905 (a word list reads better as words)
)
RUNS = ("abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiop", "asdfghjkl", "zxcvbnm")
_RUNS_BOTH_WAYS = RUNS + tuple(run[::-1] for run in RUNS)


def weakness(key: str) -> str | None:
    """Why ``key`` is too weak to sign with, or None when it is fine."""
    if len(key) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters ({HOW_TO_FIX})"
    distinct = len(set(key))
    if distinct < MIN_DISTINCT:
        return (
            f"has only {distinct} distinct characters, at least {MIN_DISTINCT} are needed "
            f"({HOW_TO_FIX})"
        )
    period = _period(key)
    if period <= len(key) // 2:
        return f"repeats a {period}-character pattern ({HOW_TO_FIX})"
    if _unguessable(key.lower()) < MIN_UNGUESSABLE:
        return f"is mostly common passwords, words or runs like abc, 123 or qwerty ({HOW_TO_FIX})"
    return None


def _period(key: str) -> int:
    """The length of the shortest pattern that ``key`` repeats (``len(key)`` if none)."""
    for size in range(1, len(key) // 2 + 1):
        if all(key[i] == key[i - size] for i in range(size, len(key))):
            return size
    return len(key)


def _unguessable(key: str) -> int:
    """How many characters of ``key`` (lower case) are in no common word and no run."""
    guessable = [False] * len(key)
    for word in COMMON:
        start = key.find(word)
        while start != -1:
            guessable[start : start + len(word)] = [True] * len(word)
            start = key.find(word, start + 1)
    for start in range(len(key)):
        end = start + 1
        while end <= len(key) and any(key[start:end] in run for run in _RUNS_BOTH_WAYS):
            end += 1
        if end - 1 - start >= 3:
            guessable[start : end - 1] = [True] * (end - 1 - start)
    return guessable.count(False)
