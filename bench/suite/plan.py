"""What one run measures, and for how long: the full run of ``make bench`` and the tiny
``--quick`` run of the smoke test share every code path and differ only in these numbers."""

from __future__ import annotations

from dataclasses import dataclass, replace

# Every group of measurements the runner knows, in run order; ``--only`` picks some.
GROUPS = ("floors", "garrison", "capacity", "pocketbase")


@dataclass(frozen=True)
class Plan:
    duration: int = 10  # seconds per wrk point and per k6 arrival-rate point
    warmup: int = 2  # seconds of warm-up load before a server's first measurement
    rows: int = 10_000  # rows seeded into Garrison's and PocketBase's ``items``
    users: int = 20  # Garrison users (the mixed workload spreads its tokens over them)
    connections: tuple[int, ...] = (64, 1000)  # wrk closed-loop levels
    login_connections: int = 4  # wrk login: low concurrency (argon2 is meant to be slow)
    refresh_vus: int = 64  # k6 refresh chains (each VU rotates its own token family)
    mixed_users: int = 1000  # k6 simulated users with think time
    think_seconds: float = 1.0  # mean think time (uniform over 0.5x..1.5x)
    mixed_duration: int = 30  # seconds of the think-time run (after a ramp of a third)
    sweep_rates: tuple[int, ...] = (50, 100, 200, 300, 500, 750, 1000, 1250)  # mixed, k6
    capacity_rate: int = 1000  # "1,000 users at one request per second each"
    hold_connections: int = 10_000  # keep-alive connections held open at once
    hold_interval_ms: int = 50_000  # each held connection sends one request this often
    hold_duration: int = 60  # seconds the connections are held
    probe_rate: int = 100  # get-by-id req/s measured alone and during the login storm
    storm_vus: int = 16  # concurrent login loops of the storm
    storm_duration: int = 15
    settle: bool = True  # wait for idle servers between measurements
    workers: int = 2
    only: tuple[str, ...] = GROUPS

    def wants(self, group: str) -> bool:
        return group in self.only


FULL = Plan()

QUICK = Plan(
    duration=1,
    warmup=0,
    rows=60,
    users=2,
    connections=(8,),
    login_connections=2,
    refresh_vus=4,
    mixed_users=20,
    think_seconds=0.2,
    mixed_duration=2,
    sweep_rates=(20,),
    capacity_rate=40,
    hold_connections=50,
    hold_interval_ms=500,
    hold_duration=2,
    probe_rate=20,
    storm_vus=2,
    storm_duration=2,
    settle=False,
)


def _value(current: object, text: str) -> object:
    if isinstance(current, bool):
        return text.lower() in ("1", "true", "yes", "on")
    if isinstance(current, tuple):
        return tuple(int(part) for part in text.split(",") if part)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, int):
        return int(text)
    return text


def build(
    quick: bool, duration: int | None, only: str | None, settings: list[str] | None = None
) -> Plan:
    plan = QUICK if quick else FULL
    if duration is not None:
        plan = replace(plan, duration=duration)
    for item in settings or []:  # --set hold_connections=2000 (any field above)
        name, sep, text = item.partition("=")
        if not sep or name not in plan.__dataclass_fields__ or name == "only":
            raise SystemExit(f"--set: {item!r} is not NAME=VALUE with a plan field")
        plan = replace(plan, **{name: _value(getattr(plan, name), text)})
    if only:
        wanted = tuple(part.strip() for part in only.split(",") if part.strip())
        unknown = [part for part in wanted if part not in GROUPS]
        if unknown:
            raise SystemExit(f"--only: unknown group(s) {unknown}; known: {', '.join(GROUPS)}")
        plan = replace(plan, only=wanted)
    return plan
