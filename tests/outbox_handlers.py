"""An outbox handler module for tests that run a real ``garrison worker`` process, named in
``GARRISON_WORKER__HANDLER_MODULES=["tests.outbox_handlers"]``. It records each delivery
in the ``test_deliveries`` table (which the test creates); a message whose data carries
``"hang": true`` hangs on its first attempt, so the test can kill the worker mid-batch."""

from __future__ import annotations

import asyncio
import os

from sqlalchemy import text

from garrison.db import Database
from garrison.log import get_logger
from garrison.outbox import Message, register

log = get_logger("tests.outbox_handlers")


async def record_delivery(message: Message, db: Database) -> None:
    if message.payload["data"].get("hang") and message.attempts == 1:
        log.info("test.hanging", event_id=message.event_id)
        await asyncio.Event().wait()
    async with db.transaction() as session:
        await session.execute(
            text("INSERT INTO test_deliveries (event_id, pid) VALUES (:event_id, :pid)"),
            {"event_id": message.event_id, "pid": os.getpid()},
        )


register("test.", record_delivery)
