"""Latency against offered load (k6, constant arrival rate, mixed requests): p50 and p99 on
the left, the rate actually served on the right, one colour per system."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLOURS = {"garrison": "tab:blue", "pocketbase": "tab:orange"}


def draw(sweeps: dict[str, list[dict[str, Any]]], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, served) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=100)
    for system, points in sweeps.items():
        rates = [point["rate"] for point in points]
        colour = COLOURS.get(system)
        latency.plot(
            rates, [p["p50_ms"] for p in points], "o--", color=colour, label=f"{system} p50"
        )
        latency.plot(
            rates, [p["p99_ms"] for p in points], "s-", color=colour, label=f"{system} p99"
        )
        served.plot(rates, [p["rps"] for p in points], "o-", color=colour, label=system)
    if sweeps:
        top = max(point["rate"] for points in sweeps.values() for point in points)
        served.plot([0, top], [0, top], ":", color="grey", label="offered")
    latency.set_yscale("log")
    latency.axhline(200, color="red", linewidth=0.8, linestyle=":", label="200 ms")
    latency.set_xlabel("offered load (req/s)")
    latency.set_ylabel("latency (ms, log scale)")
    latency.set_title("Latency against offered load")
    served.set_xlabel("offered load (req/s)")
    served.set_ylabel("served (req/s)")
    served.set_title("Throughput against offered load")
    for axes in (latency, served):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
