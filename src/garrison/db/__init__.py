"""Database layer: engines and sessions, metadata, retries and migrations."""

from garrison.db.base import Base, metadata
from garrison.db.engine import Database
from garrison.db.retry import is_transient, transact, with_retry

__all__ = ["Base", "Database", "is_transient", "metadata", "transact", "with_retry"]
