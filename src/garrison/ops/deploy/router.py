"""``/api/v1/deploys``: the deploy history and promotion approvals (``deploys:manage``).

Deploys themselves run on the command line (``garrison deploy``): they start processes and
drive the load balancer on the host. What an admin does from anywhere is here: read the
history, and approve a release that passed staging for promotion. The approver is the
signed-in admin (a person, not an API key), so the second-admin rule of ``garrison deploy
promote`` holds without trusting a name typed on a command line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from garrison.auth import users
from garrison.auth.deps import require
from garrison.auth.principal import Principal
from garrison.deps import ReadSession, WriteSession
from garrison.errors import Forbidden
from garrison.ops.deploy import service as ledger
from garrison.ops.deploy.models import DeployRecord

DEPLOYS_PERMISSION = "deploys:manage"
DeployAdmin = Annotated[Principal, require(DEPLOYS_PERMISSION)]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"  # release ids and environment names

router = APIRouter(prefix="/api/v1/deploys", tags=["deploys"])


class DeployOut(BaseModel):
    id: int
    environment: str
    action: str
    release_id: str
    version: str
    colour: str
    actor: str
    outcome: str
    reason: str | None
    checks_passed: bool
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: DeployRecord) -> DeployOut:
        return cls.model_validate(row, from_attributes=True)


class DeployList(BaseModel):
    items: list[DeployOut]


class ApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release_id: str = Field(min_length=1, max_length=64, pattern=_NAME)
    environment: str = Field(
        min_length=1, max_length=32, pattern=_NAME, description="where it may be promoted to"
    )
    staging: str = Field(
        default="staging",
        min_length=1,
        max_length=32,
        pattern=_NAME,
        description="the environment whose post-deploy checks it must have passed",
    )


class ApprovalOut(BaseModel):
    release_id: str
    environment: str
    approver_id: str
    approver_email: str
    created_at: datetime


@router.get("", summary="Deploys and rollbacks, newest first")
async def list_deploys(
    _: DeployAdmin,
    session: ReadSession,
    environment: Annotated[str | None, Query(max_length=32, pattern=_NAME)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeployList:
    rows = await ledger.history(session, environment=environment, limit=limit)
    return DeployList(items=[DeployOut.of(row) for row in rows])


@router.post(
    "/approvals",
    status_code=201,
    summary="Approve a release that passed staging for promotion (as the signed-in admin)",
)
async def approve(body: ApprovalIn, admin: DeployAdmin, session: WriteSession) -> ApprovalOut:
    if admin.kind != "user":
        raise Forbidden("an approval is given by a signed-in admin, not by a key or a service")
    staged = await ledger.require_passed(
        session, environment=body.staging, release_id=body.release_id
    )
    user = await users.get_user(session, user_id=admin.id)
    approval = await ledger.approve(
        session,
        release_id=body.release_id,
        environment=body.environment,
        approver_email=user.email,
        staged_by=staged.actor,
    )
    return ApprovalOut.model_validate(approval, from_attributes=True)
