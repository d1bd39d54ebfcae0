"""The files domain's app-wide object: the storage backend and the signing keyring."""

from __future__ import annotations

from dataclasses import dataclass

from garrison.crypto import Keyring, keyring_for
from garrison.files.storage import Storage, open_storage
from garrison.settings import FileSettings, Settings


@dataclass
class FileRuntime:
    storage: Storage
    keyring: Keyring
    settings: FileSettings

    @classmethod
    def open(cls, settings: Settings) -> FileRuntime:
        return cls(open_storage(settings), keyring_for(settings), settings.files)

    async def close(self) -> None:
        await self.storage.close()
