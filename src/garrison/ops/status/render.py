"""Jinja2 rendering of the status page, the Atom feed and the small HTML pages (front door,
subscription). Autoescaped everywhere: incident text is data, never markup."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

STATE_ICONS = {
    "operational": "✓",
    "degraded": "!",
    "outage": "✕",
    "maintenance": "⚙",
    "unknown": "?",
}


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("garrison.ops.status", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html", "xml", "atom"), default_for_string=True, default=True
        ),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["day"] = _day
    env.globals["icons"] = STATE_ICONS
    return env


@cache
def stylesheet() -> bytes:
    return files("garrison.ops.status").joinpath("templates/status.css").read_bytes()


def _parse(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _when(value: str | datetime | None) -> str:
    moment = _parse(value)
    return "" if moment is None else moment.strftime("%d %b %Y, %H:%M UTC")


def _day(value: str) -> str:
    return datetime.fromisoformat(value).strftime("%d %b %Y")


def page(doc: dict[str, Any], *, title: str) -> str:
    incidents = doc["incidents"]
    return (
        environment()
        .get_template("status.html")
        .render(
            doc=doc,
            title=title,
            open_incidents=[i for i in incidents if i["resolved_at"] is None],
            past_incidents=[i for i in incidents if i["resolved_at"] is not None],
            names={c["id"]: c["name"] for c in doc["components"]},
        )
    )


def feed(doc: dict[str, Any], *, title: str, base: str) -> str:
    entries: list[dict[str, Any]] = []
    for incident in doc["incidents"]:
        for update in incident["updates"]:
            entries.append(
                {
                    "id": f"urn:garrison:incident:{incident['id']}:{update['created_at']}",
                    "title": f"{incident['title']} ({update['status']})",
                    "updated": update["created_at"],
                    "summary": update["message"],
                    "link": f"{base}/status#incident-{incident['id']}",
                }
            )
    for window in doc["maintenances"]:
        entries.append(
            {
                "id": f"urn:garrison:maintenance:{window['id']}:{window['updated_at']}",
                "title": f"Maintenance: {window['title']}",
                "updated": window["updated_at"],
                "summary": (
                    f"{_when(window['starts_at'])} to {_when(window['ends_at'])}. "
                    f"{window['description']}"
                ).strip(),
                "link": f"{base}/status#maintenance-{window['id']}",
            }
        )
    entries.sort(key=lambda e: e["updated"], reverse=True)
    updated = entries[0]["updated"] if entries else doc["generated_at"]
    return (
        environment()
        .get_template("feed.atom")
        .render(title=title, base=base, entries=entries, updated=updated)
    )


def html(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
