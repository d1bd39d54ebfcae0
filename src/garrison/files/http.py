"""HTTP details of serving a file: byte ranges (RFC 9110 §14), ETags and a safe
``Content-Disposition`` (RFC 6266: an ASCII ``filename`` and a UTF-8 ``filename*``)."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from garrison.files.errors import RangeNotSatisfiable
from garrison.files.sniff import IMAGE_TYPES

_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) for a single satisfiable range; ``None`` to send the
    whole file (no header, several ranges, a form we ignore); 416 for one outside it."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None  # an invalid range is ignored (RFC 9110 §14.1.1)
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"the file has {size} bytes", headers={"Content-Range": f"bytes */{size}"}, header="Range"
    )


def matches(if_none_match: str | None, tag: str) -> bool:
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return tag in (t.strip().removeprefix("W/") for t in if_none_match.split(","))


def disposition(filename: str, content_type: str) -> str:
    """``inline`` for images a browser shows as such, ``attachment`` for anything else."""
    kind = "inline" if content_type in IMAGE_TYPES else "attachment"
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"[^A-Za-z0-9._ ()-]", "_", ascii_name).strip() or "file"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
