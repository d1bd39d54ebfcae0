"""Re-encrypting data at rest under the current master key (``garrison secrets rotate``).

Every domain that seals values with ``garrison.crypto`` registers one function here, at
import of its service module:

    rewrap.register("webhooks.secret", rewrap_secrets)

A function re-encrypts, in the session it is given, every value of its own that
``Keyring.needs_rewrap`` reports, and returns how many it changed. The command imports the
modules in ``MODULES`` and runs each function in a transaction of its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.crypto import Keyring
from garrison.db.engine import Database
from garrison.db.retry import transact

Rewrap = Callable[[AsyncSession, Keyring], Awaitable[int]]

# The modules that register a re-wrap function (later users of the crypto module add theirs).
MODULES = [
    "garrison.webhooks.service",
    "garrison.auth.oauth.providers",
    "garrison.audit.subject_keys",
]
_functions: dict[str, Rewrap] = {}


def register(name: str, function: Rewrap) -> None:
    _functions[name] = function


def registered() -> dict[str, Rewrap]:
    for module in MODULES:
        importlib.import_module(module)
    return dict(_functions)


async def rotate(db: Database, keyring: Keyring, name: str) -> int:
    function = registered()[name]

    async def work(session: AsyncSession) -> int:
        return await function(session, keyring)

    return await transact(db, work)
