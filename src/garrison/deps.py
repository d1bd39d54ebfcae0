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
from garrison.runtime import runtime_of
from garrison.settings import Settings
from garrison.store.base import KeyValueStore


async def get_settings(request: Request) -> Settings:
    return runtime_of(request).settings


def database_of(request: Request) -> Database:
    return runtime_of(request).db


# Dependencies are coroutines on purpose: FastAPI runs a plain ``def`` dependency in its
# thread pool, a thread hop per request for what is an attribute read.
async def get_database(request: Request) -> Database:
    return database_of(request)


async def get_store(request: Request) -> KeyValueStore:
    return runtime_of(request).store


async def write_session(request: Request) -> AsyncIterator[AsyncSession]:
    # Denied/failed attempts reported during the request are written after its transaction.
    async with events.deferring_standalone(), database_of(request).transaction() as session:
        yield session


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with database_of(request).read_session() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
StoreDep = Annotated[KeyValueStore, Depends(get_store)]
WriteSession = Annotated[AsyncSession, Depends(write_session, scope="function")]
ReadSession = Annotated[AsyncSession, Depends(read_session, scope="function")]
