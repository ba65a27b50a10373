"""What makes ``NOTIFIER_SECRET_KEY`` too weak: four plain rules a person can check by eye.

1. Shorter than 32 characters.
2. Fewer than 8 distinct characters (spaces only, one repeated character, "abab…").
3. A shorter pattern repeated ("Password123!Password123!…").
4. Mostly guessable: after taking out every common password or word from a small built-in list
   and every run of three or more characters along the alphabet, the digits or a keyboard row
   (forwards or backwards), fewer than 16 characters are left.
5. Words, not randomness: an entropy estimate under 120 bits. The key is cut into pieces
   (camelCase words, runs of digits, single other characters); a piece of three or more
   letters whose letter pairs are common in English (``COMMON_PAIRS``; one rare pair allowed
   from six letters on) counts as one word of a 4,096-word vocabulary (12 bits) however long
   it is, a separator (space, ``-``, ``_``, ``.``) 2 bits, any other character what one random
   character of the key's alphabet is worth. ``CovaSpineAndPainCenterSecretKey2025!`` and
   ``correct horse battery staple 2025`` come to about 117 and 80 bits; of 20,000 keys from
   ``secrets.token_urlsafe(24)`` (32 characters) the lowest came to 131, of ``token_hex(16)``
   126.

A word list finds keys like these offline in milliseconds; ``secrets.token_urlsafe(48)``
(``notifier secret generate``) passes every rule.
"""

from __future__ import annotations

import math
import re

MIN_LENGTH = 32
MIN_DISTINCT = 8
MIN_UNGUESSABLE = 16
MIN_BITS = 120
WORD_BITS = 12.0
SEPARATOR_BITS = 2.0
_PIECES = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^A-Za-z\d]")
# The letter pairs most frequent in English text, most frequent first.
COMMON_PAIRS = frozenset(
    """
    th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le
    ve co me de hi ri ro ic ne ea ra ce li ch ll be ma si om ur ca el ta la ns di fo ho pe ec
    pr no ct us ac ot il tr ly nc et ut ss so rs un lo wa ge ie wh ee wi em ad ol rt po we na
    ul ni ts mo ow pa im mi ai sh ir su id os iv ia am fi ci vi pl ig tu ev ld ry mp fe bl ab
    gh ty op wo sa ay ex ke fr oo av ag if ap gr od bo sp rd do uc bu ei ov by rm ep tt oc fa
    ef cu rn sc gi da yo cr cl du ga qu ue ff ba ey ls va um pp ua up lu go ht ru ug ds lt pi
    rc rr eg au ck ew mu br bi pt ak pu ui rg ib tl ny ki rk ys ob mm fu ph og ms ye ud mb ip
    ub oi rl gu dr hr cc tw ft wn nu af hu nn eo vo rv nf xp gn sm fl iz ok nl my gl aw ju oa
    eq sy sl ps jo lf nv je nk kn gs dy hy ze ks xt bs ik dd cy rp sk xi oe oy ws lv
    """.split()  # noqa: SIM905
)
_SEPARATORS = frozenset(" -_.")
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
    if (bits := entropy_bits(key)) < MIN_BITS:
        return (
            f"reads like words or a phrase (about {bits:.0f} bits of randomness, at least "
            f"{MIN_BITS} are needed; {HOW_TO_FIX})"
        )
    return None


def entropy_bits(key: str) -> float:
    """A deliberately low estimate of how many bits of randomness ``key`` holds (rule 5)."""
    alphabet = sum(
        size
        for size, present in (
            (26, any(c.islower() for c in key)),
            (26, any(c.isupper() for c in key)),
            (10, any(c.isdigit() for c in key)),
            (33, any(not c.isalnum() for c in key)),
        )
        if present
    )
    per_character = math.log2(max(alphabet, 2))
    bits, covered = 0.0, 0
    for piece in _PIECES.finditer(key):
        text = piece.group()
        covered += len(text)
        if _word_like(text):
            bits += WORD_BITS
        elif text in _SEPARATORS:
            bits += SEPARATOR_BITS
        else:
            bits += len(text) * per_character
    return bits + (len(key) - covered) * per_character  # letters outside A-Z, a-z


def _word_like(piece: str) -> bool:
    """Three or more letters whose pairs are common in English (one rare pair from six on)."""
    if not piece.isalpha() or len(piece) < 3:
        return False
    lower = piece.lower()
    rare = sum(lower[i : i + 2] not in COMMON_PAIRS for i in range(len(lower) - 1))
    return rare <= (1 if len(lower) >= 6 else 0)


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
