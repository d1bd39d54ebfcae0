"""The Prometheus rules shipped in ``deploy/prometheus/`` load in Prometheus's own checker,
name only metrics Garrison exports, and the 5xx alert fires in promtool's rule tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from garrison.metrics.registry import REGISTRY
from tests import services

RULES = Path(__file__).parent.parent / "deploy" / "prometheus"


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        services.unavailable("promtool", "install the Debian package prometheus")
    assert binary is not None
    return binary


def test_rules_pass_promtool_check() -> None:
    files = sorted(str(p) for p in RULES.glob("garrison-*.yml") if ".test." not in p.name)
    assert len(files) == 2
    result = subprocess.run(
        [_promtool(), "check", "rules", *files], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


def test_rule_unit_tests_pass() -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", "garrison-alerts.test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_name_only_exported_metrics() -> None:
    exported: set[str] = set()
    for family in REGISTRY.collect():
        exported.update(sample.name for sample in family.samples)
        exported.add(family.name + "_total")
        exported.add(family.name + "_bucket")
        exported.add(family.name)
    text = "".join(p.read_text() for p in RULES.glob("garrison-*.yml") if ".test." not in p.name)
    used = set(re.findall(r"\b(garrison_[a-z_]+)(?:\{|\[|\s|\))", text))
    recorded = set(re.findall(r"record: ([a-z_:]+)", text))
    assert len(used) >= 5
    unknown = {name for name in used if name not in exported and name not in recorded}
    assert not unknown, unknown
