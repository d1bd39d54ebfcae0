"""Password hashing (argon2id, off the event loop) and the password policy.

Policy (OWASP ASVS 5.0 §6.2): at least ``password_min_length`` (≥ 8) characters, up to
``password_max_length`` (≥ 64), no composition rules, and not in the shipped list of common
passwords. Hashes are verified and produced in a small pool of threads of their own, run
at a lower scheduling priority (Linux: a per-thread nice value): a burst of logins queues
there instead of stalling the event loop, and argon2's deliberately heavy work yields the
CPU to every other request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib.resources import files
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from garrison.auth.errors import WeakPassword
from garrison.settings import AuthSettings

HASH_THREADS = 2  # per process
HASH_NICENESS = 10  # added to the hashing threads' nice value
T = TypeVar("T")


def _lower_priority() -> None:
    """Runs first in each hashing thread."""
    # Not Linux, or not allowed: the threads keep the normal priority.
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread) + HASH_NICENESS
        os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness))


@cache
def common_passwords() -> frozenset[str]:
    text = files("garrison.auth").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def normalise(password: str) -> str:
    """NFKC, as ASVS suggests, so the same password typed differently still matches."""
    return unicodedata.normalize("NFKC", password)


def check_policy(password: str, settings: AuthSettings, *, pointer: str = "#/password") -> None:
    length = len(password)
    if length < settings.password_min_length:
        raise WeakPassword(
            f"the password must have at least {settings.password_min_length} characters", pointer
        )
    if length > settings.password_max_length:
        raise WeakPassword(
            f"the password must have at most {settings.password_max_length} characters", pointer
        )
    if password.lower() in common_passwords():
        raise WeakPassword("this password is too common; choose another", pointer)


class Hasher:
    def __init__(self, settings: AuthSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        self._threads = ThreadPoolExecutor(
            max_workers=HASH_THREADS,
            thread_name_prefix="garrison-argon2",
            initializer=_lower_priority,
        )
        # Verified against when the user does not exist, so both answers cost the same.
        self._dummy = self._hasher.hash("garrison-dummy-password-for-timing")

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` in a hashing thread."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, work)

    async def hash(self, password: str) -> str:
        text = normalise(password)
        return await self.run(lambda: self._hasher.hash(text))

    async def verify(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored``; a missing hash still costs one verify."""
        target, text = stored or self._dummy, normalise(password)
        ok = await self.run(lambda: self._verify(target, text))
        return ok and stored is not None

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True
