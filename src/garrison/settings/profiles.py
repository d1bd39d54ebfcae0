"""Defaults per environment profile; a value set explicitly always wins."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from garrison.settings.gateway import auth_routes

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "development": {
        "http": {"host": "127.0.0.1", "hsts": False, "secure_cookies": False},
        "log": {"level": "debug", "format": "auto", "audit": False},
        "rate_limit": {
            "requests_per_minute": None,
            "burst": None,
            "routes": auth_routes(None, None),
        },
        "worker": {"in_process": True},
        "auth": {"registration": "open"},
    },
    "staging": {
        "http": {"host": "0.0.0.0", "hsts": True, "secure_cookies": True},  # noqa: S104
        "log": {"level": "info", "format": "json", "audit": False},
        "rate_limit": {
            "requests_per_minute": 500,
            "burst": 100,
            "routes": auth_routes(30, 10),
        },
        "worker": {"in_process": False},
        "auth": {"registration": "invite"},
    },
    "production": {
        "http": {"host": "0.0.0.0", "hsts": True, "secure_cookies": True},  # noqa: S104
        "log": {"level": "info", "format": "json", "audit": True},
        "rate_limit": {
            "requests_per_minute": 100,
            "burst": 20,
            "routes": auth_routes(10, 5),
        },
        "worker": {"in_process": False},
        "auth": {"registration": "closed"},
    },
}


def apply_profile(settings: BaseModel, env: str) -> None:
    """Fill each section's fields that were not set explicitly from ``env``'s profile."""
    for section_name, defaults in PROFILES[env].items():
        section: BaseModel = getattr(settings, section_name)
        for field, value in defaults.items():
            if field not in section.model_fields_set:
                setattr(section, field, copy.deepcopy(value))
