"""A real HTTP/1.1 receiver on a loopback port for the webhook tests and the benchmark.

Each path chooses a behaviour: ``/ok`` answers 204, ``/status/<code>`` answers that code,
``/slow`` answers 204 after 50 ms, ``/hang`` never answers until ``release()``, ``/huge``
streams a 1 GiB body (lazily), ``/endless`` a chunked body that never ends, ``/binary``
invalid UTF-8, ``/retry-after`` 429 with ``Retry-After: 1``, ``/redirect`` a 302.
``down`` answers 503 to everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    received: float = field(default_factory=time.monotonic)


class Receiver:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.down = False
        self.arrived = asyncio.Event()
        self._released = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "/ok") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def release(self) -> None:
        self._released.set()

    def to(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]

    async def wait_for(self, path: str, count: int, seconds: float = 30) -> list[Delivery]:
        deadline = time.monotonic() + seconds
        while len(self.to(path)) < count:
            self.arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(self.to(path))} of {count} deliveries to {path}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self.arrived.wait()
        return self.to(path)

    async def close(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                lines = request.decode("latin-1").split("\r\n")
                _method, path, _version = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.deliveries.append(Delivery(path, headers, body))
                self.arrived.set()
                if not await self._answer(path, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, path: str, writer: asyncio.StreamWriter) -> bool:
        def head(status: str, extra: str = "", length: int | None = 0) -> bytes:
            size = "" if length is None else f"Content-Length: {length}\r\n"
            return f"HTTP/1.1 {status}\r\n{size}{extra}\r\n".encode()

        if self.down:
            writer.write(head("503 Service Unavailable"))
        elif path == "/slow":
            await asyncio.sleep(0.05)
            writer.write(head("204 No Content"))
        elif path == "/hang":
            await self._released.wait()
            writer.write(head("200 OK"))
        elif path.startswith("/status/"):
            writer.write(head(f"{path.rsplit('/', 1)[1]} Status"))
        elif path == "/retry-after":
            writer.write(head("429 Too Many Requests", "Retry-After: 1\r\n"))
        elif path == "/redirect":
            writer.write(head("302 Found", "Location: http://127.0.0.1:1/\r\n"))
        elif path == "/binary":
            data = b"\xff\xfe\xfa not utf-8 \xc3\x28"
            writer.write(head("200 OK", length=len(data)) + data)
        elif path == "/huge":
            writer.write(head("200 OK", length=1 << 30))
            chunk = b"x" * 65536
            for _ in range((1 << 30) // len(chunk)):  # stops when the sender hangs up
                writer.write(chunk)
                await writer.drain()
            return False
        elif path == "/endless":
            writer.write(head("200 OK", "Transfer-Encoding: chunked\r\n", length=None))
            while True:
                writer.write(b"1000\r\n" + b"y" * 4096 + b"\r\n")
                await writer.drain()
        else:
            writer.write(head("204 No Content"))
        await writer.drain()
        return True
