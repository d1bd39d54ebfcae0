"""Security scans run by CI (``make security``): bandit over ``src/`` and pip-audit over the
installed (locked) dependency set.

- bandit: any finding of high severity fails (exit 1); medium ones are printed, low ones
  counted.
- pip-audit: any known vulnerability fails (exit 1). When the vulnerability service cannot
  be reached (no network to it, or every package comes back unchecked) the scan says so in
  one line and does not fail: an unreachable service proves nothing either way, and this is
  reported, not hidden.

Usage: ``python scripts/security_scan.py [--json]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bandit() -> tuple[bool, dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", str(ROOT / "src"), "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout or "{}")
    findings = report.get("results", [])
    high = [f for f in findings if f.get("issue_severity") == "HIGH"]
    for finding in findings:
        if finding.get("issue_severity") == "LOW":
            continue  # counted below; asserts and constant names are most of these
        print(
            f"bandit: {finding['issue_severity'].lower()}: {finding['test_id']} "
            f"{finding['filename']}:{finding['line_number']}: {finding['issue_text']}"
        )
    summary = {"findings": len(findings), "high": len(high)}
    print(f"bandit: {len(findings)} finding(s), {len(high)} of high severity")
    return not high, summary


def pip_audit() -> tuple[bool, dict[str, object]]:
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as lock:
        lock.write(frozen)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "-r",
            lock.name,
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    Path(lock.name).unlink()
    try:
        report = json.loads(result.stdout)
    except ValueError:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1][:200]
        print(f"pip-audit: blocked: the vulnerability service could not be queried ({reason})")
        return True, {"status": "blocked", "reason": reason}
    deps = report.get("dependencies", [])
    checked = [d for d in deps if "skip_reason" not in d]
    vulnerable = [d for d in checked if d.get("vulns")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"pip-audit: {dep['name']} {dep['version']}: {ids}")
    if deps and not checked:
        print(
            f"pip-audit: blocked: none of {len(deps)} locked packages could be checked "
            "(the vulnerability service is not reachable from this machine)"
        )
        return True, {"status": "blocked", "packages": len(deps)}
    print(f"pip-audit: {len(checked)} package(s) checked, {len(vulnerable)} vulnerable")
    return not vulnerable, {
        "status": "checked",
        "packages": len(checked),
        "vulnerable": len(vulnerable),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON summary at the end")
    args = parser.parse_args()
    bandit_ok, bandit_summary = bandit()
    audit_ok, audit_summary = pip_audit()
    if args.json:
        print(json.dumps({"bandit": bandit_summary, "pip_audit": audit_summary}))
    return 0 if bandit_ok and audit_ok else 1


if __name__ == "__main__":
    sys.exit(main())
