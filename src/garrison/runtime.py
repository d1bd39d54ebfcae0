"""The app-wide objects of one process, in one typed place.

The app's lifespan (``garrison.app``) builds one ``Runtime`` and keeps it on the app; every
reader goes through ``runtime_of`` (a request, an app, or an ASGI scope). The shared
infrastructure has typed fields. The domains' own app-wide objects (the auth runtime, the
collection cache, the quota lookup, the health service, …) are *components*, stored and
found by their class, so this module, which sits below the domains, imports none of them:

    runtime_of(request).get(AuthRuntime)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

from garrison.db.engine import Database
from garrison.settings import Settings
from garrison.store.base import KeyValueStore
from garrison.store.cache import Cache
from garrison.store.ratelimit import RateLimiter
from garrison.types import Scope

T = TypeVar("T")


class RuntimeNotStarted(RuntimeError):
    """Asked for the runtime before the app's lifespan created it (or after it ended)."""


@dataclass
class Runtime:
    settings: Settings
    db: Database
    store: KeyValueStore
    cache: Cache
    rate_limiter: RateLimiter
    _components: dict[type[Any], Any] = field(default_factory=dict)

    def add(self, component: object) -> None:
        """Register a domain's app-wide object under its class (one per class)."""
        kind = type(component)
        if kind in self._components:
            raise ValueError(f"a {kind.__name__} is already registered")
        self._components[kind] = component

    def get(self, kind: type[T]) -> T:
        """The registered instance of ``kind``; ``LookupError`` names it when missing."""
        try:
            component: T = self._components[kind]
        except KeyError:
            raise LookupError(f"no {kind.__name__} in this runtime") from None
        return component

    def find(self, kind: type[T]) -> T | None:
        component: T | None = self._components.get(kind)
        return component


_ATTRIBUTE = "runtime"


def attach(app: Any, runtime: Runtime | None) -> None:
    """Keep ``runtime`` on ``app`` (``None`` detaches it at shutdown)."""
    setattr(app.state, _ATTRIBUTE, runtime)


def runtime_of(source: HTTPConnection | Scope | Any) -> Runtime:
    """The runtime of the app serving ``source`` (a request, an ASGI scope, or the app)."""
    runtime = find_runtime(source)
    if runtime is None:
        raise RuntimeNotStarted("the app's lifespan has not started")
    return runtime


def find_runtime(source: HTTPConnection | Scope | Any) -> Runtime | None:
    """Like ``runtime_of``, but ``None`` before the lifespan has run (middleware use it)."""
    if isinstance(source, HTTPConnection):
        app = source.app
    elif isinstance(source, dict):
        app = source.get("app")
    else:
        app = source
    value = getattr(getattr(app, "state", None), _ATTRIBUTE, None)
    return value if isinstance(value, Runtime) else None
