"""What `outbound reconcile` prints, and the API's reconciliation jobs answer as their report: one
summary line, one line per integration, then one line per problem, leftover and error."""

from __future__ import annotations

from typing import Any


def integration_line(figures: dict[str, Any]) -> str:
    head = f"  {figures['integrationId']} ({figures['integrationType']}): {figures['deliveries']} deliveries"
    if figures["outcome"] == "not checkable":
        return f"{head}, not checkable"
    if figures["outcome"] == "not checked":
        return f"{head}, not checked: recorded without their files"
    checked = (
        f"{head}, {figures['files']} files; missing {figures['missing']}, different {figures['different']}, "
        f"re-sent {figures['resent']}"
    )
    return f"{checked}; error (below)" if figures["outcome"] == "error" else checked


def report_lines(tally: dict[str, Any]) -> list[str]:
    resent = "nothing (dry run)" if tally["dryRun"] else str(tally["resent"])
    lines = [
        f"reconcile {tally['id']}: checked {tally['deliveries']} deliveries, {tally['files']} files; "
        f"missing {tally['missing']}, different {tally['different']}, re-sent {resent}, "
        f"not checkable {tally['notCheckable']}, errors {len(tally['errors'])}, "
        f"cleaned {len(tally['cleaned']) + tally.get('cleanedLeftOut', 0)}"
        f"{' (dry run: found, kept)' if tally['dryRun'] and tally['cleaned'] else ''}"
    ]
    lines.extend(integration_line(f) for f in tally.get("integrations", []))
    if tally["withoutFiles"]:
        lines.append(
            f"  {tally['withoutFiles']} deliveries were recorded without their files (older workers): not checked"
        )
    for p in tally["problems"]:
        found = "" if p["foundBytes"] is None else f" ({p['foundBytes']} bytes, {p['expectedBytes']} delivered)"
        lines.append(f"  {p['problem']}: {p['integrationId']} {p['name']}{found}")
    if tally.get("problemsLeftOut"):
        lines.append(f"  … and {tally['problemsLeftOut']} more problems, not listed here")
    for c in tally["cleaned"]:
        lines.append(f"  cleaned: {c['integrationId']} {c['name']} (the service's leftover)")
    if tally.get("cleanedLeftOut"):
        lines.append(f"  … and {tally['cleanedLeftOut']} more leftovers, not listed here")
    for integration_id, error in sorted(tally["errors"].items()):
        lines.append(f"  error: {integration_id}: {error}")
    return lines
