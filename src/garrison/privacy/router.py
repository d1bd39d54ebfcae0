"""Privacy endpoints: exports (admin for anyone, ``POST /api/v1/auth/me/export`` for
oneself), erasures with a dry run, and per-collection policies. Admin endpoints need
``privacy:manage``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request
from starlette.responses import FileResponse, Response

from garrison.auth.deps import CurrentPrincipal, require
from garrison.auth.principal import Principal
from garrison.deps import ReadSession, SettingsDep, WriteSession
from garrison.errors import Forbidden, GarrisonError, NotFound
from garrison.privacy import erasure, export, policies
from garrison.privacy.models import PrivacyJob, PrivacyPolicy
from garrison.privacy.schemas import ErasureIn, ExportIn, JobOut, PolicyIn, PolicyOut
from garrison.runtime import runtime_of
from garrison.settings import Settings

router = APIRouter(tags=["privacy"])
PREFIX = "/api/v1/privacy"
PrivacyAdmin = Annotated[Principal, require("privacy:manage")]
Collection = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class Gone(GarrisonError):
    """The resource existed but is no longer available (an expired export link)."""

    status, slug, title = 410, "gone", "Gone"


def _job(job: PrivacyJob, settings: Settings) -> JobOut:
    out = JobOut.model_validate(job, from_attributes=True)
    if job.kind == "export" and job.status == "done":
        query = export.download_query(settings, job.id)
        out.download_url = f"{PREFIX}/exports/{job.id}/download?{query}"
    return out


def _schedule(request: Request, background: BackgroundTasks, job_id: str) -> None:
    # After the response, so after the job row has committed.
    runtime = runtime_of(request)
    background.add_task(export.run_export, runtime.db, runtime.settings, job_id=job_id)


@router.post(f"{PREFIX}/exports", status_code=202, summary="Export a user's data (job)")
async def create_export(
    admin: PrivacyAdmin,
    request: Request,
    background: BackgroundTasks,
    session: WriteSession,
    settings: SettingsDep,
    body: ExportIn,
) -> JobOut:
    job = await export.request_export(session, user_id=body.user_id, actor=admin.actor)
    _schedule(request, background, job.id)
    return _job(job, settings)


@router.post("/api/v1/auth/me/export", status_code=202, summary="Export my own data (job)")
async def export_me(
    principal: CurrentPrincipal,
    request: Request,
    background: BackgroundTasks,
    session: WriteSession,
    settings: SettingsDep,
) -> JobOut:
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("only a signed-in user can export their own data")
    job = await export.request_export(session, user_id=principal.user_id, actor=principal.actor)
    _schedule(request, background, job.id)
    return _job(job, settings)


@router.get(f"{PREFIX}/exports/{{job_id}}", summary="An export's status and download link")
async def get_export(
    principal: CurrentPrincipal, session: ReadSession, settings: SettingsDep, job_id: str
) -> JobOut:
    job = await export.get_job(session, job_id=job_id, kind="export")
    if not principal.can("privacy:manage") and principal.user_id != job.subject_id:
        raise NotFound(f"no export {job_id!r}")  # another person's export does not exist to you
    return _job(job, settings)


@router.get(f"{PREFIX}/exports/{{job_id}}/download", summary="Download (signed link)")
async def download_export(
    session: ReadSession,
    settings: SettingsDep,
    job_id: str,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=64)],
) -> Response:
    if not export.link_ok(settings, job_id, expires, signature):
        raise Forbidden("the link is invalid or has expired")
    job = await export.get_job(session, job_id=job_id, kind="export")
    if job.status != "done" or not job.archive:
        raise Gone("the archive is not available (expired or erased)")
    path = export.archive_path(settings.data_dir, job.archive)
    if not path.exists():
        raise Gone("the archive has been deleted")
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"garrison-export-{job.subject_id}.zip",
        headers={"Cache-Control": "no-store"},
    )


@router.post(f"{PREFIX}/erasures", summary="Erase a user (dry_run previews)")
async def create_erasure(
    admin: PrivacyAdmin,
    response: Response,
    session: WriteSession,
    settings: SettingsDep,
    body: ErasureIn,
) -> dict[str, object]:
    job, report = await erasure.erase(
        session,
        user_id=body.user_id,
        dry_run=body.dry_run,
        actor=admin.actor,
        data_dir=settings.data_dir,
    )
    response.status_code = 200 if job is None else 201
    return {"id": job.id if job else None, "status": job.status if job else "preview", **report}


@router.get(f"{PREFIX}/policies", summary="Every collection's privacy policy")
async def list_policies(_admin: PrivacyAdmin, session: ReadSession) -> list[PolicyOut]:
    return [_policy(row) for row in await policies.list_policies(session)]


@router.put(f"{PREFIX}/policies/{{collection}}", summary="Set a collection's privacy policy")
async def put_policy(
    admin: PrivacyAdmin, session: WriteSession, collection: Collection, body: PolicyIn
) -> PolicyOut:
    row = await policies.set_policy(session, collection=collection, body=body, actor=admin.actor)
    return _policy(row)


def _policy(row: PrivacyPolicy) -> PolicyOut:
    return PolicyOut.model_validate(
        {
            "collection": row.collection,
            "erasure": row.erasure,
            "retention": row.retention,
            "updated_at": row.updated_at,
        }
    )
