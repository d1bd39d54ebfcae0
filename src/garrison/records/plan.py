"""Bringing one environment's collections to another's: export, plan, apply.

``plan`` compares the collections a database has with the ones a schema file wants and
returns the steps (create, change, delete) in an order that works: collections another one
relates to are created first, indexes are dropped before their fields, rules change last.
A field whose definition differs is refused rather than guessed at (a type change would
have to rewrite data); a rename is not guessed either — it shows as a drop and an add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.events import Actor
from garrison.records import registry
from garrison.records.ddl import SchemaChange
from garrison.records.spec import CollectionSpec

FORMAT_VERSION = 1


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class Step:
    collection: str
    action: Literal["create", "change", "delete"]
    spec: CollectionSpec | None = None
    change: SchemaChange | None = None

    @property
    def destructive(self) -> bool:
        return self.action == "delete" or bool(self.change and self.change.destructive)

    def describe(self) -> str:
        if self.action == "create":
            assert self.spec is not None
            return f"create collection {self.collection} ({len(self.spec.fields)} fields)"
        if self.action == "delete":
            return f"DELETE collection {self.collection} and all its records"
        assert self.change is not None
        return f"{self.collection}: {_describe_change(self.change)}"


def _describe_change(change: SchemaChange) -> str:
    field, index = change.field, change.index
    if change.kind == "add_field" and field is not None:
        return f"add field {field.name} ({field.type})"
    if change.kind == "drop_field" and field is not None:
        return f"DROP field {field.name} and its data"
    if change.kind == "rename_field":
        return f"rename field {change.old} to {change.new}"
    if change.kind in ("add_index", "drop_index") and index is not None:
        verb = "add" if change.kind == "add_index" else "drop"
        return f"{verb} index on {', '.join(index.fields)}"
    return "set access rules"


def export_document(specs: list[CollectionSpec]) -> dict[str, Any]:
    return {
        "garrison_schema": FORMAT_VERSION,
        "collections": [spec.model_dump(mode="json") for spec in specs],
    }


def read_document(data: Any) -> list[CollectionSpec]:
    if not isinstance(data, dict) or data.get("garrison_schema") != FORMAT_VERSION:
        raise PlanError(f"not a Garrison schema file (expected garrison_schema: {FORMAT_VERSION})")
    items = data.get("collections")
    if not isinstance(items, list):
        raise PlanError("'collections' must be a list")
    specs = [CollectionSpec.model_validate(item) for item in items]
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise PlanError("a collection appears twice")
    return specs


def _creation_order(new: list[CollectionSpec], existing: set[str]) -> list[CollectionSpec]:
    ordered: list[CollectionSpec] = []
    done = set(existing)
    pending = {spec.name: spec for spec in new}
    while pending:
        ready = [
            spec
            for spec in pending.values()
            if all(
                f.collection in done or f.collection == spec.name or f.collection not in pending
                for f in spec.fields
                if f.type == "relation"
            )
        ]
        if not ready:
            raise PlanError(
                "relations between new collections form a cycle: " + ", ".join(sorted(pending))
            )
        for spec in sorted(ready, key=lambda s: s.name):
            ordered.append(spec)
            done.add(spec.name)
            del pending[spec.name]
    return ordered


def _changes(current: CollectionSpec, desired: CollectionSpec) -> list[SchemaChange]:
    have = {f.name: f for f in current.fields}
    want = {f.name: f for f in desired.fields}
    for name in have.keys() & want.keys():
        if have[name] != want[name]:
            raise PlanError(
                f"{desired.name}.{name} is defined differently; Garrison does not change a "
                "field's definition in place (add a new field, copy the data, drop the old one)"
            )
    steps: list[SchemaChange] = []
    want_ix = list(desired.indexes)
    steps += [SchemaChange("drop_index", index=ix) for ix in current.indexes if ix not in want_ix]
    steps += [SchemaChange("drop_field", field=have[n]) for n in have if n not in want]
    steps += [SchemaChange("add_field", field=want[n]) for n in want if n not in have]
    steps += [SchemaChange("add_index", index=ix) for ix in want_ix if ix not in current.indexes]
    if current.rules != desired.rules:
        steps.append(SchemaChange("set_rules", rules=desired.rules, old_rules=current.rules))
    return steps


def plan(
    current: list[CollectionSpec], desired: list[CollectionSpec], *, prune: bool
) -> list[Step]:
    have = {spec.name: spec for spec in current}
    want = {spec.name: spec for spec in desired}
    steps = [
        Step(spec.name, "create", spec=spec)
        for spec in _creation_order([s for s in desired if s.name not in have], set(have))
    ]
    for name in sorted(have.keys() & want.keys()):
        steps += [Step(name, "change", change=c) for c in _changes(have[name], want[name])]
    if prune:
        steps += [Step(name, "delete") for name in sorted(have.keys() - want.keys(), reverse=True)]
    return steps


async def current_specs(session: AsyncSession) -> list[CollectionSpec]:
    return [collection.spec for collection in await registry.list_collections(session)]


async def apply(session: AsyncSession, *, steps: list[Step], actor: Actor) -> None:
    """Carry out a plan the operator has seen and confirmed."""
    for step in steps:
        if step.action == "create":
            assert step.spec is not None
            await registry.create_collection(
                session, data=step.spec.model_dump(mode="json"), actor=actor
            )
        elif step.action == "change":
            assert step.change is not None
            await registry.change_schema(
                session, name=step.collection, change=step.change, confirm=True, actor=actor
            )
        else:
            await registry.delete_collection(
                session, name=step.collection, confirm=True, actor=actor
            )
