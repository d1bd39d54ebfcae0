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
    slug = "collection-not-found"


class RecordNotFound(NotFound):
    slug = "record-not-found"


class CollectionExists(Conflict):
    slug = "collection-exists"


class ConfirmationRequired(Conflict):
    slug = "confirmation-required"
    title = "Confirmation Required"


class InvalidFilter(BadRequest):
    slug = "invalid-filter"
    title = "Invalid Filter"


class RuleDenied(Forbidden):
    slug = "rule-denied"


class StaleRecord(PreconditionFailed):
    slug = "stale-record"


class IdempotencyKeyReused(ValidationFailed):
    slug = "idempotency-key-reused"
    title = "Idempotency Key Reused"


class IdempotencyKeyInUse(Conflict):
    slug = "idempotency-key-in-use"
    title = "Idempotency Key In Use"


class CollectionReferenced(Conflict):
    """``referencing``: the collections whose relations point at this one."""

    slug = "collection-referenced"
    title = "Collection Referenced"
