from __future__ import annotations

import uuid

from garrison.records.ids import is_uuid, uuid7


def test_uuid7_shape() -> None:
    value = uuid.UUID(uuid7())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_monotonic_and_unique() -> None:
    ids = [uuid7() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_is_uuid() -> None:
    assert is_uuid(uuid7())
    assert not is_uuid("1")
    assert not is_uuid("' OR 1=1 --")
    assert not is_uuid(uuid7().upper())
