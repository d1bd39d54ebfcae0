"""The benchmark and load suite behind ``make bench`` (``python -m bench.suite``).

One run measures Garrison in a production-like set-up (MariaDB, Redis, ``garrison serve
--workers 2``, a ``garrison worker``), the floors of this machine (a bare ASGI hello, a
FastAPI hello, the same SELECT through asyncmy) and a peer (PocketBase), with wrk (closed
loop) and k6 (open loop, constant arrival rate), and writes JSON, a Markdown table and a PNG
chart under ``bench/results/``. Modules:

- ``plan``: what a run measures and how long (full, ``--quick``)
- ``procs``: server processes, ports, their CPU seconds and peak RSS
- ``loadgen``: wrk and k6, each returning one result dictionary
- ``garrison_target``, ``floors``, ``pocketbase``: the systems under test
- ``runner``: the phases in order; ``report`` and ``chart``: the output
"""
