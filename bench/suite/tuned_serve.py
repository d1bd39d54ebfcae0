"""``garrison serve`` with granian's connection limits raised: a bench-only comparison.

granian's ``backpressure`` caps the connections each worker accepts (not the requests it
runs), and defaults to ``backlog / workers`` = 512; ``garrison serve`` has no setting for
either, so a default Garrison serves about 1,024 keep-alive connections at once and leaves
the rest waiting in the kernel's accept queue. This wrapper runs the unchanged ``garrison``
command line with both raised, to show what the rest of the stack does with 10,000:

    python -m bench.suite.tuned_serve serve --workers 2 ...

``BENCH_GRANIAN_BACKLOG`` and ``BENCH_GRANIAN_BACKPRESSURE`` set the values.
"""

from __future__ import annotations

import os
from typing import Any

import granian

from garrison.cli import main

_Granian = granian.Granian


class _Tuned(_Granian):  # type: ignore[misc,valid-type]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["backlog"] = int(os.environ.get("BENCH_GRANIAN_BACKLOG", "16384"))
        kwargs["backpressure"] = int(os.environ.get("BENCH_GRANIAN_BACKPRESSURE", "8192"))
        super().__init__(*args, **kwargs)


granian.Granian = _Tuned  # garrison.server imports it at call time

if __name__ == "__main__":
    main()
