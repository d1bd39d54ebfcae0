"""Imports every domain's tables so the metadata is complete (for migrations and tests)."""

from garrison.auth import models as auth_models
from garrison.ops import models as ops_models

__all__ = ["auth_models", "ops_models"]
