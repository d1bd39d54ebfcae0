"""Every metric Garrison exports, defined once, and the helpers other domains call.

Labels are closed sets or code names: a method outside the standard ones is ``OTHER``, an
unmatched route is ``<unmatched>``, and a helper given a value outside its set records
``other``. That is what keeps ids, e-mail addresses and tokens out of the exposition, and
keeps the number of series bounded whatever clients send.

In multi-worker mode (``garrison serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before this module
is imported) every value lives in a per-process file and the exposition sums them; gauges
say how (``livesum``: only live workers count).
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from garrison import __version__

REGISTRY: Final = CollectorRegistry(auto_describe=True)

UNMATCHED_ROUTE: Final = "<unmatched>"
OTHER: Final = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_MAX_CACHED_CHILDREN = 4096
_CODE_NAME = re.compile(r"[a-z][a-z_]{0,31}")

RateLimitDecision = Literal["allowed", "limited", "fail_open", "fail_closed"]
CacheResult = Literal["hit", "miss", "error"]
AuthOutcome = Literal["success", "denied", "failed"]
AUTH_KINDS: Final = frozenset(
    {
        "register",
        "login",
        "logout",
        "refresh",
        "refresh_reuse",
        "client_credentials",
        "access_token",
        "api_key",
        "password_change",
        "password_reset",
        "email_verification",
        "mfa",
        "oauth",
    }
)
_DECISIONS = frozenset({"allowed", "limited", "fail_open", "fail_closed"})
_CACHE_RESULTS = frozenset({"hit", "miss", "error"})
_OUTCOMES = frozenset({"success", "denied", "failed"})

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "garrison_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "garrison_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
HTTP_IN_FLIGHT = Gauge(
    "garrison_http_requests_in_flight",
    "Requests being handled now.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
RATELIMIT_DECISIONS = Counter(
    "garrison_ratelimit_decisions",
    "Rate-limit decisions, by policy and decision.",
    ["policy", "decision"],
    registry=REGISTRY,
)
CACHE_REQUESTS = Counter(
    "garrison_cache_requests",
    "Cache look-ups, by namespace and result.",
    ["namespace", "result"],
    registry=REGISTRY,
)
AUTH_EVENTS = Counter(
    "garrison_auth_events",
    "Authentication events, by kind and outcome.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
DB_POOL_SIZE = Gauge(
    "garrison_db_pool_size",
    "Configured connections per pool (summed over workers).",
    ["pool"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
DB_POOL_CHECKED_OUT = Gauge(
    "garrison_db_pool_checked_out",
    "Connections in use.",
    ["pool"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "garrison_db_pool_overflow",
    "Connections open beyond the pool size.",
    ["pool"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
DB_POOL_WAIT = Histogram(
    "garrison_db_pool_wait_seconds",
    "Time to acquire a connection from the pool (including opening one).",
    ["pool"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
DB_REPLICATION_LAG = Gauge(
    "garrison_db_replication_lag_seconds",
    "Seconds each reader is behind the writer (-1: unknown or unreachable).",
    ["node"],
    registry=REGISTRY,
    multiprocess_mode="livemostrecent",
)
DB_REPLICA_USABLE = Gauge(
    "garrison_db_replica_usable",
    "1 when a reader serves reads, 0 when it is skipped (lagging, broken, unreachable).",
    ["node"],
    registry=REGISTRY,
    multiprocess_mode="livemostrecent",
)
DB_CLUSTER_SIZE = Gauge(
    "garrison_db_cluster_size",
    "Members of the writer's Galera cluster (wsrep_cluster_size; 0 when not a cluster).",
    registry=REGISTRY,
    multiprocess_mode="livemostrecent",
)
DB_STORAGE_BYTES = Gauge(
    "garrison_db_storage_bytes",
    "Storage the database takes: tables, indexes and their free space (SQLite: file and WAL).",
    registry=REGISTRY,
    multiprocess_mode="livemostrecent",
)
DB_STORAGE_WARN_BYTES = Gauge(
    "garrison_db_storage_warn_bytes",
    "The storage warning threshold (GARRISON_HEALTH__DATABASE_WARN_MB), when one is set.",
    registry=REGISTRY,
    multiprocess_mode="livemostrecent",
)
DB_QUERY_DURATION = Histogram(
    "garrison_db_query_duration_seconds",
    "Statement execution time, by pool and statement kind.",
    ["pool", "operation"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
PROCESS_CPU = Gauge(
    "garrison_process_cpu_seconds",
    "User and system CPU time of the worker processes.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
PROCESS_MEMORY = Gauge(
    "garrison_process_resident_memory_bytes",
    "Resident memory of the worker processes.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
PROCESS_OPEN_FDS = Gauge(
    "garrison_process_open_fds",
    "Open file descriptors of the worker processes.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
PROCESS_START = Gauge(
    "garrison_process_start_time_seconds",
    "Start time of the oldest live worker, in seconds since the epoch.",
    registry=REGISTRY,
    multiprocess_mode="livemin",
)
WORKERS = Gauge(
    "garrison_workers",
    "Live worker processes.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
BUILD_INFO = Gauge(
    "garrison_build_info",
    "Always 1; the label says which version runs.",
    ["version"],
    registry=REGISTRY,
    multiprocess_mode="max",
)
BUILD_INFO.labels(version=__version__).set(1)


def method_label(method: str) -> str:
    return method if method in _METHODS else "OTHER"


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "000"


def code_name(value: str) -> str:
    """A label value written in code (a namespace, a policy name), or ``other``."""
    return value if _CODE_NAME.fullmatch(value) else OTHER


# The labelled children per (method, route, status): the set is bounded by the closed
# labels, and looking a child up here is several times cheaper than ``.labels()``.
_REQUEST_CHILDREN: dict[tuple[str, str | None, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    key = (method, route, status)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        labels = (method_label(method), route or UNMATCHED_ROUTE, status_label(status))
        children = (HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels))
        if len(_REQUEST_CHILDREN) < _MAX_CACHED_CHILDREN and labels[0] != "OTHER":
            _REQUEST_CHILDREN[key] = children
    children[0].inc()
    children[1].observe(seconds)


def ratelimit(decision: RateLimitDecision, *, policy: str = "default") -> None:
    """Count one rate-limit decision (``policy`` is the policy's name, never its key)."""
    value = decision if decision in _DECISIONS else OTHER
    RATELIMIT_DECISIONS.labels(code_name(policy), value).inc()


def cache(result: CacheResult, *, namespace: str = "default") -> None:
    """Count one cache look-up: ``hit``, ``miss``, or ``error`` (fell back to the source)."""
    value = result if result in _CACHE_RESULTS else OTHER
    CACHE_REQUESTS.labels(code_name(namespace), value).inc()


def auth_event(kind: str, outcome: AuthOutcome) -> None:
    """Count one authentication event; ``kind`` outside ``AUTH_KINDS`` is recorded as other."""
    AUTH_EVENTS.labels(
        kind if kind in AUTH_KINDS else OTHER, outcome if outcome in _OUTCOMES else OTHER
    ).inc()
