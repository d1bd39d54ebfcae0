"""Imports every domain's tables so the metadata is complete (for migrations and tests)."""

from garrison.ops import models as ops_models
from garrison.quotas import models as quotas_models
from garrison.records import models as records_models

__all__ = ["ops_models", "quotas_models", "records_models"]
