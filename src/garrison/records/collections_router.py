"""Collection administration: /api/v1/collections (define, inspect, change, delete)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from starlette.responses import Response

from garrison.deps import DatabaseDep
from garrison.errors import NotFound, ValidationFailed
from garrison.records import registry
from garrison.records.cache import CollectionCache
from garrison.records.ddl import SchemaChange
from garrison.records.deps import AdminDep
from garrison.records.schemas import (
    AddField,
    AddIndex,
    CollectionList,
    CollectionOut,
    DropField,
    DropIndex,
    RenameField,
    SchemaChangeIn,
    SchemaChangeOut,
    SetRules,
    collection_out,
)
from garrison.runtime import runtime_of

router = APIRouter(prefix="/api/v1/collections", tags=["collections"])
Confirm = Annotated[bool, Query(description="required for changes that destroy data")]


def _cache(request: Request) -> CollectionCache:
    cache = runtime_of(request).get(CollectionCache)
    return cache


@router.get("", response_model=CollectionList, summary="List collections")
async def list_collections(db: DatabaseDep, admin: AdminDep) -> CollectionList:
    async with db.read_session() as session:
        found = await registry.list_collections(session)
    return CollectionList(items=[collection_out(c.spec, c.version) for c in found])


@router.post("", status_code=201, response_model=CollectionOut, summary="Define a collection")
async def create_collection(
    data: Annotated[dict[str, Any], Body()],
    request: Request,
    response: Response,
    db: DatabaseDep,
    admin: AdminDep,
) -> CollectionOut:
    async with db.transaction() as session:
        collection = await registry.create_collection(session, data=data, actor=admin.actor)
    await _cache(request).changed(collection)
    response.headers["Location"] = f"{request.url.path}/{collection.name}"
    return collection_out(collection.spec, collection.version)


@router.get("/{name}", response_model=CollectionOut, summary="A collection's definition")
async def get_collection(name: str, db: DatabaseDep, admin: AdminDep) -> CollectionOut:
    async with db.read_session() as session:
        collection = await registry.get_collection(session, name=name)
    return collection_out(collection.spec, collection.version)


def _change(name: str, body: SchemaChangeIn, current: Any) -> SchemaChange:
    match body:
        case AddField():
            return SchemaChange("add_field", field=body.field)
        case DropField():
            field = current.spec.field(body.name)
            if field is None:
                raise ValidationFailed(
                    "no such field",
                    errors=[{"pointer": "#/name", "detail": f"not a field of {name}"}],
                )
            return SchemaChange("drop_field", field=field)
        case RenameField():
            if current.spec.field(body.old) is None:
                raise ValidationFailed(
                    "rename needs an existing 'old' and a new name",
                    errors=[{"pointer": "#/old", "detail": "must name an existing field"}],
                )
            return SchemaChange("rename_field", old=body.old, new=body.new)
        case AddIndex() | DropIndex():
            return SchemaChange(body.kind, index=body.index)
        case SetRules():
            return SchemaChange("set_rules", rules=body.rules, old_rules=current.spec.rules)
    raise AssertionError(body)  # pragma: no cover


@router.post("/{name}/changes", response_model=CollectionOut, summary="Change the schema")
async def change_schema(
    name: str,
    body: SchemaChangeIn,
    request: Request,
    db: DatabaseDep,
    admin: AdminDep,
    confirm: Confirm = False,
) -> CollectionOut:
    async with db.transaction() as session:
        current = await registry.get_collection(session, name=name)
        change = _change(name, body, current)
        collection = await registry.change_schema(
            session, name=name, change=change, confirm=confirm, actor=admin.actor
        )
    await _cache(request).changed(collection)
    return collection_out(collection.spec, collection.version)


@router.get("/{name}/changes", response_model=list[SchemaChangeOut], summary="Schema history")
async def schema_history(name: str, db: DatabaseDep, admin: AdminDep) -> list[SchemaChangeOut]:
    async with db.read_session() as session:
        rows = await registry.history(session, name=name)
    return [
        SchemaChangeOut(
            id=row.id,
            version=row.version,
            change=row.change,
            inverse=row.inverse,
            actor=row.actor,
            applied_at=row.applied_at.isoformat() + "Z",
        )
        for row in rows
    ]


@router.post(
    "/{name}/changes/{change_id}/revert", response_model=CollectionOut, summary="Undo a change"
)
async def revert_change(
    name: str,
    change_id: str,
    request: Request,
    db: DatabaseDep,
    admin: AdminDep,
    confirm: Confirm = False,
) -> CollectionOut:
    async with db.transaction() as session:
        rows = await registry.history(session, name=name)
        row = next((r for r in rows if r.id == change_id), None)
        if row is None:
            raise NotFound(f"no change {change_id!r} on {name!r}")
        inverse = SchemaChange.from_json(row.inverse)
        collection = await registry.change_schema(
            session, name=name, change=inverse, confirm=confirm, actor=admin.actor
        )
    await _cache(request).changed(collection)
    return collection_out(collection.spec, collection.version)


@router.delete("/{name}", status_code=204, summary="Delete a collection and its records")
async def delete_collection(
    name: str, request: Request, db: DatabaseDep, admin: AdminDep, confirm: Confirm = False
) -> Response:
    async with db.transaction() as session:
        await registry.delete_collection(session, name=name, confirm=confirm, actor=admin.actor)
    await _cache(request).dropped(name)
    return Response(status_code=204)
