"""Try the batch, then one by one: one bad item must not take the others with it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def batch_then_each(
    items: Sequence[T],
    run: Callable[[Sequence[T]], list[R]],
    *,
    splits: Callable[[Exception], bool],
    alone: Callable[[T, Exception], list[R]],
    on_split: Callable[[Exception], None] = lambda error: None,
) -> list[R]:
    """``run(items)``; if it raises an error that ``splits``, ``run`` each item on its own and
    hand an item that fails even alone to ``alone`` (which may re-raise). An error that does not
    split propagates from the batch."""
    try:
        return run(items)
    except Exception as error:
        if not splits(error):
            raise
        if len(items) == 1:
            return alone(items[0], error)
        on_split(error)
    results: list[R] = []
    for item in items:
        try:
            results.extend(run([item]))
        except Exception as error:
            results.extend(alone(item, error))
    return results
