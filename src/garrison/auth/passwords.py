"""Password hashing (argon2id, off the event loop) and the password policy.

Policy (OWASP ASVS 5.0 §6.2): at least ``password_min_length`` (≥ 8) characters, up to
``password_max_length`` (≥ 64), no composition rules, and not in the shipped list of common
passwords. Hashes are verified and produced in a worker thread with a bounded number in
flight, so a burst of logins queues there instead of stalling the event loop.
"""

from __future__ import annotations

import asyncio
import unicodedata
from functools import cache
from importlib.resources import files

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from garrison.auth.errors import WeakPassword
from garrison.settings import AuthSettings

_MAX_CONCURRENT_HASHES = 4


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
        self._slots = asyncio.Semaphore(_MAX_CONCURRENT_HASHES)
        # Verified against when the user does not exist, so both answers cost the same.
        self._dummy = self._hasher.hash("garrison-dummy-password-for-timing")

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, normalise(password))

    async def verify(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored``; a missing hash still costs one verify."""
        target = stored or self._dummy
        async with self._slots:
            ok = await asyncio.to_thread(self._verify, target, normalise(password))
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
