"""A completed append survives its process being SIGKILLed right after it returned."""

from __future__ import annotations

import pytest

from claude_proxy.sessions import SessionSettings
from tests.sessions import worker
from tests.sessions.conftest import SHARED, MakeStore
from tests.sessions.test_locks import worker_process


@pytest.mark.parametrize("backend", SHARED, indirect=True)
async def test_an_append_survives_a_sigkill_right_after_it(
    make_store: MakeStore, store_settings: SessionSettings
) -> None:
    async with worker_process("append", store_settings) as line:
        assert line == "done 1"
    # Killed as soon as it said so; a store opened afterwards (as after a restart) has it.
    reopened = await make_store()
    session = await reopened.load(worker.TENANT, "durable")
    assert session is not None
    assert session.messages == [worker.TURN]
    assert session.version == 1
