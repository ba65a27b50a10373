"""How the CLI prints a broadcast's plan: a table for people, one row per channel and outcome as
CSV, or the whole plan as JSON."""

from __future__ import annotations

from typing import Any

from notifier.domain.estimates import duration
from notifier.domain.wording import plural
from notifier.usecases.plans import Plan

PLAN_COLUMNS = ("channel", "outcome", "reason", "messages")


def plan_rows(plan: Plan) -> list[dict[str, Any]]:
    """One row per channel and outcome: "send", "skip" (with the reason) or "defer"."""
    rows: list[dict[str, Any]] = []
    for c in plan.channels:
        rows.append({"channel": c.channel, "outcome": "send", "reason": "", "messages": c.send})
        if c.deferred_until:
            reason = f"quiet hours until {c.deferred_until[:16].replace('T', ' ')}"
            rows.append(
                {"channel": c.channel, "outcome": "defer", "reason": reason, "messages": c.send}
            )
        for why, count in sorted(c.skipped.items()):
            rows.append({"channel": c.channel, "outcome": "skip", "reason": why, "messages": count})
        if c.without_address:
            why = "no valid address (not in the audience)"
            row = {"channel": c.channel, "outcome": "none", "reason": why}
            rows.append(row | {"messages": c.without_address})
    return rows


def plan_lines(plan: Plan) -> list[str]:
    """The plan as a person reads it."""
    what = "dry run of the fan-out" if plan.dry_run else "what its fan-out did"
    lines = [
        f"Plan of notice {plan.notice_id}, broadcast {plan.broadcast_id} ({plan.status}; {what})"
    ]
    for c in plan.channels:
        skipped = sum(c.skipped.values())
        lines.append(f"  {c.label}: {c.send} to send, {skipped} skipped")
        for why, count in sorted(c.skipped.items(), key=lambda item: -item[1]):
            lines.append(f"    skipped {count}: {why}")
        if c.without_address:
            lines.append(
                f"    not in the audience: {plural(c.without_address, 'patient')} without a valid "
                f"{c.label} address (none given, or an invalid one left out at import)"
            )
        if c.deferred_until:
            lines.append(f"    held by quiet hours until {c.deferred_until[:16].replace('T', ' ')}")
        if c.send:
            unit = "segments" if c.longest is not None else "messages"
            cost = "no price set" if c.cost is None else f"{c.cost:.2f} {plan.currency}"
            lines.append(f"    {c.units} {unit}, {cost}, {duration(c.seconds)} at the set rate")
        if c.longest is not None:
            lines.append(
                f"    longest text: {c.longest.segments} segments ({c.longest.encoding}, "
                f"{c.longest.characters} characters, language {c.longest.language!r})"
            )
    languages = ", ".join(f"{lang} {n}" for lang, n in sorted(plan.languages.items()))
    lines.append(f"  languages: {languages or 'none'}")
    for fallback, count in sorted(plan.fallbacks.items()):
        lines.append(f"    {count} in the location's language for lack of text: {fallback}")
    total = "unknown (a channel has no price)" if plan.cost is None else f"{plan.cost:.2f}"
    lines.append(f"  patients: {plan.patients}; SMS segments: {plan.segments}")
    lines.append(f"  estimated cost: {total} {plan.currency}")
    if plan.first_send:
        lines.append(
            f"  first message: {plan.first_send[:19]}, last: {(plan.last_send or '-')[:19]}"
        )
    approval = "needs a second manager's approval" if plan.needs_approval else "no approval needed"
    lines.append(f"  approval: {approval} (threshold {plan.approval_threshold} patients)")
    lines.extend(f"  warning: {w}" for w in plan.warnings)
    return lines
