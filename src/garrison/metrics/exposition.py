"""The Prometheus text exposition: this process's registry, or every worker's files."""

from __future__ import annotations

import threading
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

from garrison.metrics.process import sample_process
from garrison.metrics.registry import REGISTRY

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def registry_for(multiproc_dir: Path | None) -> CollectorRegistry:
    if multiproc_dir is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(multiproc_dir))  # type: ignore[no-untyped-call]
    return registry


def exposition(multiproc_dir: Path | None) -> bytes:
    """The current figures in the text format (blocking: run it off the event loop)."""
    sample_process()
    return generate_latest(registry_for(multiproc_dir))


def start_listener(
    host: str, port: int, multiproc_dir: Path
) -> tuple[WSGIServer, threading.Thread]:
    """Serve the workers' metrics on a separate address, from the ``serve`` process."""
    return start_http_server(port, addr=host, registry=registry_for(multiproc_dir))
