"""FastAPI dependencies as ``Annotated`` aliases. The request boundary owns the transaction:
``WriteSession`` commits when the endpoint returns normally and rolls back when it raises,
before the response is sent, so a 2xx always means the write is durable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from garrison import events
from garrison.db.engine import Database
from garrison.settings import Settings
from garrison.store.base import KeyValueStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_store(request: Request) -> KeyValueStore:
    store: KeyValueStore = request.app.state.store
    return store


async def write_session(request: Request) -> AsyncIterator[AsyncSession]:
    # Denied/failed attempts reported during the request are written after its transaction.
    async with events.deferring_standalone(), get_database(request).transaction() as session:
        yield session


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).read_session() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
StoreDep = Annotated[KeyValueStore, Depends(get_store)]
WriteSession = Annotated[AsyncSession, Depends(write_session, scope="function")]
ReadSession = Annotated[AsyncSession, Depends(read_session, scope="function")]
