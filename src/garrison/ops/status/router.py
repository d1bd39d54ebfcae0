"""Status routes: the public page, feed and JSON; subscriptions; the ``status:manage``
API for incidents, maintenance windows and alert silences."""

from __future__ import annotations

import contextlib
import hmac
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Query, Request, status
from pydantic import EmailStr, TypeAdapter, ValidationError
from starlette.responses import Response

from garrison.auth.deps import require
from garrison.auth.principal import Principal
from garrison.deps import ReadSession, WriteSession
from garrison.errors import ValidationFailed
from garrison.mail import MailError
from garrison.ops.alerts import service as alerts_service
from garrison.ops.status import mail, render, service
from garrison.ops.status.runtime import StatusRuntime
from garrison.ops.status.schemas import (
    AlertOut,
    IncidentIn,
    IncidentOut,
    IncidentPatch,
    IncidentUpdateIn,
    MaintenanceIn,
    MaintenanceOut,
    MaintenancePatch,
    ResolveIn,
    SilenceIn,
    SubscribeIn,
)
from garrison.ops.status.snapshot import Body
from garrison.runtime import runtime_of
from garrison.settings import Settings

MANAGE = "status:manage"
StatusManager = Annotated[Principal, require(MANAGE)]
pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1/status", tags=["status"])
HTML = "text/html; charset=utf-8"
_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)


def status_of(request: Request) -> StatusRuntime:
    return runtime_of(request).get(StatusRuntime)


def _cached(request: Request, body: Body, media_type: str) -> Response:
    """The prepared body, gzip-compressed for clients that accept it (a CDN, a browser),
    with a validator per representation and encoding (RFC 9110 strong ETags)."""
    seconds = int(status_of(request).settings.status.cache_seconds)
    gzipped = "gzip" in request.headers.get("accept-encoding", "")
    etag = f'"{body.tag}-gz"' if gzipped else f'"{body.tag}"'
    headers = {
        "Cache-Control": f"public, max-age={seconds}",
        "ETag": etag,
        "Vary": "Accept-Encoding",
    }
    match = request.headers.get("if-none-match")
    if match and etag in {tag.strip() for tag in match.split(",")}:
        return Response(status_code=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        return Response(body.gzipped, media_type=media_type, headers=headers)
    return Response(body.plain, media_type=media_type, headers=headers)


@pages.get("/status")
async def status_page(request: Request) -> Response:
    bodies = await status_of(request).service.bodies()
    return _cached(request, bodies.html, HTML)


@pages.get("/status/feed.atom")
async def status_feed(request: Request) -> Response:
    bodies = await status_of(request).service.bodies()
    return _cached(request, bodies.atom, "application/atom+xml; charset=utf-8")


@pages.get("/status/style.css")
async def stylesheet() -> Response:
    return Response(
        render.stylesheet(),
        media_type="text/css; charset=utf-8",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@api.get("", summary="The status page as JSON", response_model=None)
async def status_json(request: Request) -> Response:
    bodies = await status_of(request).service.bodies()
    return _cached(request, bodies.json, "application/json")


# -- subscriptions ----------------------------------------------------------------------


def _message(settings: Settings, heading: str, text: str, **extra: str) -> Response:
    body = render.html(
        "message.html", title=settings.status.title, heading=heading, text=text, **extra
    )
    return Response(body, media_type=HTML)


async def _subscribe(
    request: Request, session: WriteSession, background: BackgroundTasks, email: str
) -> None:
    runtime = status_of(request)
    settings = runtime.settings
    token = await service.subscribe(session, email=email, ttl=settings.status.subscribe_token_ttl)
    if token is not None:
        message = mail.confirmation(settings, email=email, token=token)

        async def send() -> None:  # after the commit: the link works when it arrives
            with contextlib.suppress(MailError):
                await runtime.mailer.send(message)

        background.add_task(send)


@api.post(
    "/subscribers",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Subscribe an e-mail address (a confirmation link is sent)",
)
async def subscribe(
    body: SubscribeIn, request: Request, session: WriteSession, background: BackgroundTasks
) -> Response:
    await _subscribe(request, session, background, str(body.email))
    return Response(status_code=status.HTTP_202_ACCEPTED)


@pages.post("/status/subscribe")
async def subscribe_form(
    request: Request,
    session: WriteSession,
    background: BackgroundTasks,
    email: Annotated[str, Form(max_length=320)],
) -> Response:
    settings = status_of(request).settings
    try:
        address = _EMAIL.validate_python(email)
    except ValidationError:
        raise ValidationFailed(
            "not an e-mail address",
            errors=[{"pointer": "#/email", "detail": "not an e-mail address"}],
        ) from None
    await _subscribe(request, session, background, address)
    return _message(
        settings, "Check your inbox", "If the address is new, a confirmation link is on its way."
    )


@pages.get("/status/subscribe/confirm")
async def confirm_form(request: Request, token: Annotated[str, Query(max_length=200)]) -> Response:
    settings = status_of(request).settings
    return _message(
        settings,
        "Confirm your subscription",
        f"Receive e-mail about incidents and maintenance of {settings.status.title}.",
        form_action=f"/status/subscribe/confirm?token={token}",
        button="Confirm",
    )


@pages.post("/status/subscribe/confirm")
async def confirm_page(
    request: Request, session: WriteSession, token: Annotated[str, Query(max_length=200)]
) -> Response:
    settings = status_of(request).settings
    if await service.confirm(session, token=token):
        return _message(settings, "Subscribed", "You will get an e-mail when something changes.")
    return _message(
        settings, "Link expired", "The link is invalid, used or expired; subscribe again."
    )


@pages.get("/status/unsubscribe")
async def unsubscribe_form(
    request: Request,
    subscriber: Annotated[str, Query(alias="id", max_length=36)],
    sig: Annotated[str, Query(max_length=64)],
) -> Response:
    settings = status_of(request).settings
    return _message(
        settings,
        "Unsubscribe",
        "Stop e-mail about incidents and maintenance?",
        form_action=f"/status/unsubscribe?id={subscriber}&sig={sig}",
        button="Unsubscribe",
    )


@pages.post("/status/unsubscribe")
async def unsubscribe_page(
    request: Request,
    session: WriteSession,
    subscriber: Annotated[str, Query(alias="id", max_length=36)],
    sig: Annotated[str, Query(max_length=64)],
) -> Response:
    settings = status_of(request).settings
    expected = mail.unsubscribe_signature(settings, subscriber)
    if hmac.compare_digest(expected, sig):
        await service.unsubscribe(session, subscriber_id=subscriber)
    return _message(settings, "Unsubscribed", "This address gets no more notices.")


# -- incidents --------------------------------------------------------------------------


@api.get("/incidents", summary="Incidents, newest first")
async def list_incidents(
    _: StatusManager,
    session: ReadSession,
    open_only: Annotated[bool, Query(alias="open")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[IncidentOut]:
    return await service.list_incidents(session, open_only=open_only, limit=limit)


@api.post("/incidents", status_code=status.HTTP_201_CREATED, summary="Open an incident")
async def create_incident(
    body: IncidentIn, principal: StatusManager, request: Request, session: WriteSession
) -> IncidentOut:
    runtime = status_of(request)
    out = await service.create_incident(
        session,
        title=body.title,
        message=body.message,
        status=body.status,
        impact=body.impact,
        components=body.components,
        known=await runtime.service.known_components(),
        actor=principal.actor,
    )
    runtime.changed()
    return out


@api.get("/incidents/{incident_id}", summary="One incident with its updates")
async def get_incident(incident_id: str, _: StatusManager, session: ReadSession) -> IncidentOut:
    return await service.get_incident(session, incident_id=incident_id)


@api.patch("/incidents/{incident_id}", summary="Change an incident's title, impact or components")
async def patch_incident(
    incident_id: str,
    body: IncidentPatch,
    principal: StatusManager,
    request: Request,
    session: WriteSession,
) -> IncidentOut:
    runtime = status_of(request)
    out = await service.patch_incident(
        session,
        incident_id=incident_id,
        title=body.title,
        impact=body.impact,
        components=body.components,
        known=await runtime.service.known_components(),
        actor=principal.actor,
    )
    runtime.changed()
    return out


@api.post(
    "/incidents/{incident_id}/updates",
    status_code=status.HTTP_201_CREATED,
    summary="Post an update (status resolved resolves the incident)",
)
async def add_update(
    incident_id: str,
    body: IncidentUpdateIn,
    principal: StatusManager,
    request: Request,
    session: WriteSession,
) -> IncidentOut:
    out = await service.add_update(
        session,
        incident_id=incident_id,
        status=body.status,
        message=body.message,
        actor=principal.actor,
    )
    status_of(request).changed()
    return out


@api.post("/incidents/{incident_id}/resolve", summary="Resolve an incident")
async def resolve_incident(
    incident_id: str,
    principal: StatusManager,
    request: Request,
    session: WriteSession,
    body: ResolveIn | None = None,
) -> IncidentOut:
    out = await service.add_update(
        session,
        incident_id=incident_id,
        status="resolved",
        message=(body or ResolveIn()).message,
        actor=principal.actor,
    )
    status_of(request).changed()
    return out


# -- maintenance ------------------------------------------------------------------------


@api.get("/maintenances", summary="Maintenance windows, latest start first")
async def list_maintenances(
    _: StatusManager, session: ReadSession, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[MaintenanceOut]:
    return await service.list_maintenances(session, limit=limit)


@api.post("/maintenances", status_code=status.HTTP_201_CREATED, summary="Schedule maintenance")
async def schedule_maintenance(
    body: MaintenanceIn, principal: StatusManager, request: Request, session: WriteSession
) -> MaintenanceOut:
    runtime = status_of(request)
    out = await service.schedule_maintenance(
        session,
        title=body.title,
        description=body.description,
        components=body.components,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        read_only=body.read_only,
        known=await runtime.service.known_components(),
        actor=principal.actor,
    )
    runtime.changed()
    return out


@api.get("/maintenances/{maintenance_id}", summary="One maintenance window")
async def get_maintenance(
    maintenance_id: str, _: StatusManager, session: ReadSession
) -> MaintenanceOut:
    return await service.get_maintenance(session, maintenance_id=maintenance_id)


@api.patch("/maintenances/{maintenance_id}", summary="Move or change a maintenance window")
async def patch_maintenance(
    maintenance_id: str,
    body: MaintenancePatch,
    principal: StatusManager,
    request: Request,
    session: WriteSession,
) -> MaintenanceOut:
    runtime = status_of(request)
    out = await service.patch_maintenance(
        session,
        maintenance_id=maintenance_id,
        changes=body.model_dump(exclude_unset=True),
        known=await runtime.service.known_components(),
        actor=principal.actor,
    )
    runtime.changed()
    return out


@api.post("/maintenances/{maintenance_id}/cancel", summary="Cancel (or end) a window")
async def cancel_maintenance(
    maintenance_id: str, principal: StatusManager, request: Request, session: WriteSession
) -> MaintenanceOut:
    out = await service.cancel_maintenance(
        session, maintenance_id=maintenance_id, actor=principal.actor
    )
    status_of(request).changed()
    return out


# -- alerts -----------------------------------------------------------------------------


@api.get("/alerts", summary="Alerts, open first, then the latest resolved")
async def list_alerts(
    _: StatusManager, session: ReadSession, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[AlertOut]:
    return [
        AlertOut.model_validate(a, from_attributes=True)
        for a in await alerts_service.list_alerts(session, limit=limit)
    ]


@api.put(
    "/alerts/{rule}/silence",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Silence a rule for a while (no new alert opens)",
)
async def silence_rule(
    rule: str, body: SilenceIn, principal: StatusManager, session: WriteSession
) -> Response:
    await alerts_service.silence(
        session, rule=rule, minutes=body.minutes, reason=body.reason, actor=principal.actor
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@api.delete(
    "/alerts/{rule}/silence", status_code=status.HTTP_204_NO_CONTENT, summary="End a silence"
)
async def unsilence_rule(rule: str, principal: StatusManager, session: WriteSession) -> Response:
    await alerts_service.unsilence(session, rule=rule, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
