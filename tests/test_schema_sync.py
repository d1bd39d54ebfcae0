"""`garrison schema export` / `apply`: staging mirrors production's collections."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.db import Database
from garrison.events import Actor
from garrison.records import plan as planner
from garrison.records import registry
from garrison.records.spec import CollectionSpec
from tests import services
from tests.conftest import make_settings, migrated
from tests.helpers import garrison

AUTHORS: dict[str, Any] = {"name": "authors", "fields": [{"name": "name", "type": "text"}]}
POSTS: dict[str, Any] = {
    "name": "posts",
    "fields": [
        {"name": "title", "type": "text", "required": True},
        {"name": "author", "type": "relation", "collection": "authors"},
    ],
    "indexes": [{"fields": ["title", "author"]}],
    "rules": {"list": "owner = @auth.id", "view": ""},
}


def spec(data: dict[str, Any], **changes: Any) -> CollectionSpec:
    return CollectionSpec.model_validate(data | changes)


def test_new_collections_created_in_dependency_order() -> None:
    steps = planner.plan([], [spec(POSTS), spec(AUTHORS)], prune=False)
    assert [(s.action, s.collection) for s in steps] == [("create", "authors"), ("create", "posts")]


def test_changes_are_ordered_and_destructive_ones_flagged() -> None:
    current = spec(POSTS)
    desired = spec(
        POSTS,
        fields=[POSTS["fields"][0], {"name": "score", "type": "integer"}],
        indexes=[{"fields": ["score"]}],
        rules={"list": ""},
    )
    steps = planner.plan([spec(AUTHORS), current], [spec(AUTHORS), desired], prune=False)
    assert [s.describe() for s in steps] == [
        "posts: drop index on title, author",
        "posts: DROP field author and its data",
        "posts: add field score (integer)",
        "posts: add index on score",
        "posts: set access rules",
    ]
    assert [s.destructive for s in steps] == [False, True, False, False, False]


def test_prune_deletes_only_when_asked() -> None:
    assert planner.plan([spec(AUTHORS)], [], prune=False) == []
    (step,) = planner.plan([spec(AUTHORS)], [], prune=True)
    assert step.destructive
    assert step.describe() == "DELETE collection authors and all its records"


def test_changed_field_definition_is_refused() -> None:
    changed = spec(AUTHORS, fields=[{"name": "name", "type": "integer"}])
    with pytest.raises(planner.PlanError, match="defined differently"):
        planner.plan([spec(AUTHORS)], [changed], prune=False)


def test_relation_cycle_is_refused() -> None:
    a = {"name": "a", "fields": [{"name": "b", "type": "relation", "collection": "b"}]}
    b = {"name": "b", "fields": [{"name": "a", "type": "relation", "collection": "a"}]}
    with pytest.raises(planner.PlanError, match="cycle"):
        planner.plan([], [spec(a), spec(b)], prune=False)


def test_bad_documents() -> None:
    with pytest.raises(planner.PlanError):
        planner.read_document({"collections": []})
    with pytest.raises(planner.PlanError):
        planner.read_document({"garrison_schema": 1, "collections": [AUTHORS, AUTHORS]})


@pytest.fixture
def target_url(fresh_database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty database of the same backend (the environment being brought along)."""
    if fresh_database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'target.db'}"
        return
    url = services.create_mysql_database()
    yield url
    services.drop_mysql_database(url)


async def test_export_then_apply_mirrors_the_schema(
    fresh_database_url: str, target_url: str, tmp_path: Path
) -> None:
    source = make_settings(tmp_path / "a", database_url=fresh_database_url)
    await migrated(source)
    db = Database(source.db_url, source.db)
    try:
        async with db.transaction() as session:
            await registry.create_collection(session, data=AUTHORS, actor=Actor.system())
            await registry.create_collection(session, data=POSTS, actor=Actor.system())
    finally:
        await db.dispose()
    target = make_settings(tmp_path / "b", database_url=target_url)
    await migrated(target)

    env_a = {"GARRISON_DATA_DIR": str(tmp_path / "a"), "GARRISON_DATABASE_URL": fresh_database_url}
    env_b = {"GARRISON_DATA_DIR": str(tmp_path / "b"), "GARRISON_DATABASE_URL": target_url}
    exported = garrison("schema", "export", "--out", str(tmp_path / "schema.json"), env=env_a)
    assert exported.returncode == 0, exported.stderr

    refused = garrison("schema", "apply", str(tmp_path / "schema.json"), env=env_b)
    assert refused.returncode == 2
    assert "create collection authors" in refused.stdout
    assert "--yes" in refused.stderr
    assert json.loads(garrison("schema", "export", env=env_b).stdout)["collections"] == []

    applied = garrison("schema", "apply", "--yes", str(tmp_path / "schema.json"), env=env_b)
    assert applied.returncode == 0, applied.stderr
    assert "applied 2 step(s)" in applied.stdout
    mirrored = garrison("schema", "export", env=env_b).stdout
    assert json.loads(mirrored) == json.loads((tmp_path / "schema.json").read_text())
    again = garrison("schema", "apply", "--yes", str(tmp_path / "schema.json"), env=env_b)
    assert "nothing to do" in again.stdout


def test_apply_rejects_a_bad_file(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(
        '{"garrison_schema": 1, "collections": [{"name": "Bad Name"}]}'
    )
    result = garrison(
        "schema", "apply", str(tmp_path / "bad.json"), env={"GARRISON_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
