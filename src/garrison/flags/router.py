"""Flag definitions: /api/v1/flags (``flags:manage``). ``GET`` a flag to export its
definition; ``PUT`` it to another deployment to apply it there."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response

from garrison.auth.deps import require
from garrison.auth.principal import Principal
from garrison.deps import ReadSession, WriteSession
from garrison.errors import ValidationFailed
from garrison.flags import service
from garrison.flags.runtime import FlagRuntime
from garrison.flags.schemas import KEY_PATTERN, FlagIn, FlagOut, FlagPatch
from garrison.runtime import runtime_of

router = APIRouter(prefix="/api/v1/flags", tags=["flags"])
FlagAdmin = Annotated[Principal, require("flags:manage")]
Key = Annotated[str, Path(pattern=KEY_PATTERN, description="the flag's key")]


def _announce(request: Request, background: BackgroundTasks) -> None:
    # Background tasks run after the response, so after the transaction has committed.
    background.add_task(runtime_of(request).get(FlagRuntime).notify)


def _out(flag: object) -> FlagOut:
    return FlagOut.model_validate(service.definition(flag))  # type: ignore[arg-type]


@router.get("", summary="Every flag")
async def list_flags(_admin: FlagAdmin, session: ReadSession) -> list[FlagOut]:
    return [_out(flag) for flag in await service.list_flags(session)]


@router.post("", status_code=201, summary="Create a flag")
async def create_flag(
    admin: FlagAdmin,
    request: Request,
    background: BackgroundTasks,
    session: WriteSession,
    body: FlagIn,
) -> FlagOut:
    if body.key is None:
        raise ValidationFailed(
            "a flag needs a key", errors=[{"pointer": "#/key", "detail": "required"}]
        )
    flag = await service.create_flag(session, key=body.key, body=body, actor=admin.actor)
    _announce(request, background)
    return _out(flag)


@router.get("/{key}", summary="One flag's definition")
async def get_flag(_admin: FlagAdmin, session: ReadSession, key: Key) -> FlagOut:
    return _out(await service.get_flag(session, key=key))


@router.put("/{key}", summary="Create or replace a flag (apply an exported definition)")
async def put_flag(
    admin: FlagAdmin,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    session: WriteSession,
    key: Key,
    body: FlagIn,
) -> FlagOut:
    if body.key is not None and body.key != key:
        raise ValidationFailed(
            "the key in the body differs from the path",
            errors=[{"pointer": "#/key", "detail": f"the path names {key!r}"}],
        )
    flag, created = await service.put_flag(session, key=key, body=body, actor=admin.actor)
    response.status_code = 201 if created else 200
    _announce(request, background)
    return _out(flag)


@router.patch("/{key}", summary="Change part of a flag (the kill switch, a rollout, …)")
async def patch_flag(
    admin: FlagAdmin,
    request: Request,
    background: BackgroundTasks,
    session: WriteSession,
    key: Key,
    body: FlagPatch,
) -> FlagOut:
    flag = await service.patch_flag(session, key=key, patch=body, actor=admin.actor)
    _announce(request, background)
    return _out(flag)


@router.delete("/{key}", status_code=204, summary="Delete a flag")
async def delete_flag(
    admin: FlagAdmin,
    request: Request,
    background: BackgroundTasks,
    session: WriteSession,
    key: Key,
) -> Response:
    await service.delete_flag(session, key=key, actor=admin.actor)
    _announce(request, background)
    return Response(status_code=204)
