"""What `outbound reconcile` prints: one summary line, then one line per problem and per error."""

from __future__ import annotations

from typing import Any


def report_lines(tally: dict[str, Any]) -> list[str]:
    resent = "nothing (dry run)" if tally["dryRun"] else str(tally["resent"])
    lines = [
        f"reconcile {tally['id']}: checked {tally['deliveries']} deliveries, {tally['files']} files; "
        f"missing {tally['missing']}, different {tally['different']}, re-sent {resent}, "
        f"not checkable {tally['notCheckable']}, errors {len(tally['errors'])}, "
        f"cleaned {len(tally['cleaned'])}{' (dry run: found, kept)' if tally['dryRun'] and tally['cleaned'] else ''}"
    ]
    if tally["withoutFiles"]:
        lines.append(
            f"  {tally['withoutFiles']} deliveries were recorded without their files (older workers): not checked"
        )
    for p in tally["problems"]:
        found = "" if p["foundBytes"] is None else f" ({p['foundBytes']} bytes, {p['expectedBytes']} delivered)"
        lines.append(f"  {p['problem']}: {p['integrationId']} {p['name']}{found}")
    for c in tally["cleaned"]:
        lines.append(f"  cleaned: {c['integrationId']} {c['name']} (the service's leftover)")
    for integration_id, error in sorted(tally["errors"].items()):
        lines.append(f"  error: {integration_id}: {error}")
    return lines
