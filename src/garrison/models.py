"""Imports every domain's tables so the metadata is complete (for migrations and tests)."""

from garrison.audit import models as audit_models
from garrison.auth import models as auth_models
from garrison.auth.oauth import models as oauth_models
from garrison.files import models as files_models
from garrison.flags import models as flags_models
from garrison.ops import models as ops_models
from garrison.ops.alerts import models as alerts_models
from garrison.ops.deploy import models as deploy_models
from garrison.ops.status import models as status_models
from garrison.outbox import models as outbox_models
from garrison.privacy import models as privacy_models
from garrison.quotas import models as quotas_models
from garrison.records import models as records_models
from garrison.webhooks import models as webhooks_models

__all__ = [
    "alerts_models",
    "audit_models",
    "auth_models",
    "deploy_models",
    "files_models",
    "flags_models",
    "oauth_models",
    "ops_models",
    "outbox_models",
    "privacy_models",
    "quotas_models",
    "records_models",
    "status_models",
    "webhooks_models",
]
