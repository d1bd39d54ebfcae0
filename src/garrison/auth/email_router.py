"""``/api/v1/auth``: e-mail verification and password reset; ``/api/v1/admin/invitations``."""

from __future__ import annotations

from fastapi import APIRouter, status
from starlette.responses import Response

from garrison.auth import email_flows
from garrison.auth.deps import AuthDep, CurrentPrincipal, require
from garrison.auth.schemas import EmailIn, InvitationIn, PasswordReset, TokenIn
from garrison.errors import Forbidden

router = APIRouter(tags=["auth"])

ACCEPTED = Response(status_code=status.HTTP_202_ACCEPTED)


@router.post("/api/v1/auth/verify-email/request", status_code=status.HTTP_202_ACCEPTED)
async def request_verification(principal: CurrentPrincipal, auth: AuthDep) -> Response:
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("only users verify e-mail addresses")
    await email_flows.send_verification(auth, user_id=principal.user_id)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post("/api/v1/auth/verify-email", status_code=status.HTTP_204_NO_CONTENT)
async def verify_email(body: TokenIn, auth: AuthDep) -> Response:
    await email_flows.verify_email(auth, token=body.token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api/v1/auth/password-reset/request", status_code=status.HTTP_202_ACCEPTED)
async def request_reset(body: EmailIn, auth: AuthDep) -> Response:
    """Always 202: whether the address has an account is not revealed."""
    await email_flows.request_reset(auth, email=body.email)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post("/api/v1/auth/password-reset", status_code=status.HTTP_204_NO_CONTENT)
async def reset_password(body: PasswordReset, auth: AuthDep) -> Response:
    await email_flows.reset_password(auth, token=body.token, new_password=body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api/v1/admin/invitations",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["admin"],
)
async def invite(
    body: InvitationIn, auth: AuthDep, principal: CurrentPrincipal, _: None = require("users:write")
) -> Response:
    await email_flows.invite(auth, email=body.email, role=body.role, actor=principal.actor)
    return Response(status_code=status.HTTP_202_ACCEPTED)
