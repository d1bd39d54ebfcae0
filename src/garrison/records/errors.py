"""Errors of the records domain (all mapped to problem details by the shared handlers)."""

from __future__ import annotations

from garrison.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)


class CollectionNotFound(NotFound):
    """No collection has that name."""

    slug = "collection-not-found"


class RecordNotFound(NotFound):
    """No visible record has that id."""

    slug = "record-not-found"


class CollectionExists(Conflict):
    """A collection with that name exists already."""

    slug = "collection-exists"


class ConfirmationRequired(Conflict):
    """A destructive schema change needs ``confirm``."""

    slug = "confirmation-required"
    title = "Confirmation Required"


class InvalidFilter(BadRequest):
    """A filter or rule does not parse; ``position`` points at the problem."""

    slug = "invalid-filter"
    title = "Invalid Filter"


class RuleDenied(Forbidden):
    """The collection's access rule refuses this caller."""

    slug = "rule-denied"


class StaleRecord(PreconditionFailed):
    """The record changed since the version in ``If-Match``."""

    slug = "stale-record"


class IdempotencyKeyReused(ValidationFailed):
    """The ``Idempotency-Key`` was used before with a different request."""

    slug = "idempotency-key-reused"
    title = "Idempotency Key Reused"


class IdempotencyKeyInUse(Conflict):
    """A request with this ``Idempotency-Key`` is still being processed."""

    slug = "idempotency-key-in-use"
    title = "Idempotency Key In Use"


class CollectionReferenced(Conflict):
    """``referencing``: the collections whose relations point at this one."""

    slug = "collection-referenced"
    title = "Collection Referenced"
