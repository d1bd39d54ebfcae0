"""Benchmarks and load tests (``make bench``). Like the app and the CLI, the benchmark
scripts are composition roots: the events their set-up emits go to the audit log."""

from garrison.audit import install_recorder

install_recorder()
