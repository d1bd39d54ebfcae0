"""Admin endpoints for rate-limit quotas: /api/v1/admin/quotas."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response

from garrison.auth.deps import require
from garrison.auth.principal import Principal
from garrison.deps import ReadSession, WriteSession
from garrison.quotas import service
from garrison.quotas.schemas import SUBJECT_PATTERN, QuotaIn, QuotaOut, SubjectType
from garrison.runtime import runtime_of

router = APIRouter(prefix="/api/v1/admin/quotas", tags=["admin"])
QuotaAdmin = Annotated[Principal, require("quotas:admin")]
Subject = Annotated[str, Path(pattern=SUBJECT_PATTERN, description="API key id or role name")]


def _invalidate_after_commit(request: Request, background: BackgroundTasks) -> None:
    # Background tasks run after the response, so after the request's transaction has
    # committed: the next lookup reads the new row, never an older one it could re-cache.
    background.add_task(runtime_of(request).get(service.QuotaLookup).invalidate)


@router.get("", summary="Every quota")
async def list_quotas(_admin: QuotaAdmin, session: ReadSession) -> list[QuotaOut]:
    return [QuotaOut.model_validate(q) for q in await service.list_quotas(session)]


@router.get("/{subject_type}/{subject}", summary="One quota")
async def get_quota(
    _admin: QuotaAdmin, session: ReadSession, subject_type: SubjectType, subject: Subject
) -> QuotaOut:
    quota = await service.get_quota(session, subject_type=subject_type, subject=subject)
    return QuotaOut.model_validate(quota)


@router.put("/{subject_type}/{subject}", summary="Create or replace a quota")
async def put_quota(
    admin: QuotaAdmin,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    session: WriteSession,
    subject_type: SubjectType,
    subject: Subject,
    body: QuotaIn,
) -> QuotaOut:
    quota, created = await service.set_quota(
        session,
        subject_type=subject_type,
        subject=subject,
        requests_per_minute=body.requests_per_minute,
        burst=body.burst,
        actor=admin.actor,
    )
    response.status_code = 201 if created else 200
    _invalidate_after_commit(request, background)
    return QuotaOut.model_validate(quota)


@router.delete("/{subject_type}/{subject}", status_code=204, summary="Remove a quota")
async def delete_quota(
    admin: QuotaAdmin,
    request: Request,
    background: BackgroundTasks,
    session: WriteSession,
    subject_type: SubjectType,
    subject: Subject,
) -> Response:
    await service.delete_quota(
        session, subject_type=subject_type, subject=subject, actor=admin.actor
    )
    _invalidate_after_commit(request, background)
    return Response(status_code=204)
