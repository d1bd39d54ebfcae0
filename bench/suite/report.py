"""The run's output: ``suite-<stamp>.json`` (everything measured), ``suite-<stamp>.md`` (the
targets, met or not, and the table) and ``suite-<stamp>.png`` (latency against offered load).

Ratios compare rows of the same run at the same load: Garrison against the floor that does
the same work minus Garrison (the FastAPI hello for health, the raw driver for get and
list) and against PocketBase doing the same request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FLOOR_OF = {
    "health": ("fastapi_hello", "hello"),
    "health_live": ("fastapi_hello", "hello"),
    "get": ("raw_driver", "get"),
    "list": ("raw_driver", "list"),
}
PEER_OF = {"health": "health", "get": "get", "list": "list", "create": "create"}


def errors(row: dict[str, Any]) -> int:
    """Requests that failed: socket errors plus non-2xx/3xx answers (k6 counts both)."""
    if row.get("tool") == "k6":
        return int(row.get("failed", 0))
    return int(row.get("socket_errors", 0)) + int(row.get("status_errors", 0))


def find(rows: list[dict[str, Any]], system: str, scenario: str, load: str) -> dict[str, Any]:
    for row in rows:
        if (row["system"], row["scenario"], row["load"]) == (system, scenario, load):
            return row
    return {}


def ratio(row: dict[str, Any], other: dict[str, Any]) -> float | None:
    if not row or not other or not other.get("rps"):
        return None
    return float(row["rps"]) / float(other["rps"])


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def targets(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[dict[str, Any]]:
    conns = f"{meta['plan']['connections'][0]} conns"
    users = f"{meta['plan']['mixed_users']} users"

    def g(scenario: str, load: str = conns) -> dict[str, Any]:
        return find(rows, "garrison", scenario, load)

    checks: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: float, shown: str, above: bool = True) -> None:
        met = None if value is None else (value >= goal if above else value < goal)
        checks.append({"target": name, "measured": shown, "value": value, "met": met})

    r = ratio(g("health"), find(rows, "fastapi_hello", "hello", conns))
    add(f"health ≥ 0.8x FastAPI hello ({conns})", r, 0.8, _x(r))
    r = ratio(g("get"), find(rows, "raw_driver", "get", conns))
    add(f"get-by-id ≥ 0.7x raw-driver floor ({conns})", r, 0.7, _x(r))
    for scenario, label in (("get", "get-by-id"), ("list", "list 20")):
        r = ratio(g(scenario), find(rows, "pocketbase", scenario, conns))
        add(f"{label} ≥ 1.0x PocketBase ({conns})", r, 1.0, _x(r))
    mixed = g("mixed_users", users)
    if mixed:
        p99, failed = mixed["p99_ms"], errors(mixed)
        checks.append(
            {
                "target": f"mixed workload at {users}: p99 < 200 ms, no errors",
                "measured": f"p99 {p99:.1f} ms, {failed} errors",
                "value": p99,
                "met": p99 < 200 and failed == 0,
            }
        )
    else:
        add(f"mixed workload at {users}: p99 < 200 ms, no errors", None, 0, "-")
    alone = find_scenario(rows, "probe_alone")
    storm = find_scenario(rows, "probe_in_login_storm")
    r = storm["p99_ms"] / alone["p99_ms"] if alone and storm and alone["p99_ms"] else None
    shown = (
        f"{_x(r)} (p99 {alone['p99_ms']:.1f} → {storm['p99_ms']:.1f} ms)" if r is not None else "-"
    )
    add("login storm raises others' p99 by < 2x", r, 2.0, shown, above=False)
    return checks


def find_scenario(rows: list[dict[str, Any]], scenario: str) -> dict[str, Any]:
    return next((row for row in rows if row["scenario"] == scenario), {})


def _notes(row: dict[str, Any]) -> str:
    notes = []
    if row.get("status_5xx"):
        notes.append(f"{row['status_5xx']} 5xx")
    if row.get("socket_errors"):
        kinds = row.get("socket") or {}
        detail = ", ".join(f"{n} {kind}" for kind, n in kinds.items() if n)
        notes.append(f"socket errors: {detail or row['socket_errors']}")
    if row.get("offered_rps"):
        notes.append(f"served {row['rps'] / row['offered_rps']:.0%} of the offered rate")
    if row.get("dropped"):
        notes.append(f"{row['dropped']} iterations dropped")
    if row.get("storm_logins"):
        notes.append(f"storm: {row['storm_logins']} logins, p50 {row['storm_login_p50_ms']:.0f} ms")
    return "; ".join(notes)


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| system | scenario | load | req/s | p50 ms | p95 ms | p99 ms | errors"
        " | vs floor | vs PocketBase | CPU s / 10k req | peak RSS / worker MB | notes |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for row in rows:
        floor = peer = ""
        if row["system"] == "garrison" and row["scenario"] in FLOOR_OF:
            name, scenario = FLOOR_OF[row["scenario"]]
            r = ratio(row, find(rows, name, scenario, row["load"]))
            floor = f"{_x(r)} {name}" if r is not None else ""
        if row["system"] == "garrison" and row["scenario"] in PEER_OF:
            r = ratio(row, find(rows, "pocketbase", PEER_OF[row["scenario"]], row["load"]))
            peer = _x(r) if r is not None else ""
        lines.append(
            f"| {row['system']} | {row['scenario']} | {row['load']} | {row['rps']:,.0f}"
            f" | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['p99_ms']:.2f}"
            f" | {errors(row)} | {floor} | {peer} | {row['cpu_s_per_10k']:.2f}"
            f" | {row['peak_rss_mb_per_worker']:.0f} | {_notes(row)} |"
        )
    return lines


def markdown(stamp: str, meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    plan = meta["plan"]
    checks = targets(rows, meta)
    lines = [
        f"# Benchmark suite {stamp}",
        "",
        f"{meta['cpus']} CPUs shared by servers and load generators; Garrison with"
        f" {meta['workers']} granian workers on MariaDB and Redis (production profile);"
        f" {plan['rows']:,} rows; {plan['duration']} s per point; wall time"
        f" {meta['wall_seconds']:.0f} s. wrk rows are closed loop (connections), k6 rows open"
        " loop (req/s) or simulated users with think time. Mixed requests:"
        f" {meta['mix']}.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for check in checks:
        met = {True: "met", False: "**not met**", None: "not measured"}[check["met"]]
        lines.append(f"| {check['target']} | {check['measured']} | {met} |")
    lines += ["", "## Results", "", *table(rows), ""]
    lines += [f"![latency against offered load](suite-{stamp}.png)", ""]
    return "\n".join(lines)


def write(
    out: Path,
    stamp: str,
    meta: dict[str, Any],
    rows: list[dict[str, Any]],
    sweeps: dict[str, list[dict[str, Any]]],
) -> Path:
    from bench.suite import chart

    out.mkdir(parents=True, exist_ok=True)
    base = out / f"suite-{stamp}.json"
    document = {"meta": meta, "targets": targets(rows, meta), "results": rows, "sweeps": sweeps}
    base.write_text(json.dumps(document, indent=2) + "\n")
    base.with_suffix(".md").write_text(markdown(stamp, meta, rows))
    title = (
        f"Garrison vs PocketBase, k6 constant arrival rate, mixed requests ({meta['mix']}), {stamp}"
    )
    chart.draw(sweeps, base.with_suffix(".png"), title)
    return base
