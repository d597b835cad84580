"""``/v1/sessions``: the conversations the gateway keeps, per tenant.

``GET /v1/sessions?limit=&after_id=`` lists the tenant's sessions by id,
``GET /v1/sessions/{id}`` returns one conversation (``system`` and ``messages``, as they
were sent upstream: redacted where a policy redacts), ``DELETE /v1/sessions/{id}``
removes it. A tenant sees only its own sessions; with sessions off these are 404.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from claude_proxy.api.serve import serve
from claude_proxy.errors import InvalidRequest, NotFound
from claude_proxy.pipeline.call import Route
from claude_proxy.pipeline.chain import Run
from claude_proxy.services import SERVICES
from claude_proxy.sessions import SessionStore

__all__ = ["delete_session", "get_session", "list_sessions"]

MAX_PAGE = 1000


async def list_sessions(request: web.Request) -> web.StreamResponse:
    return await serve(request, Route.SESSIONS, _list)


async def get_session(request: web.Request) -> web.StreamResponse:
    return await serve(request, Route.SESSIONS, _get)


async def delete_session(request: web.Request) -> web.StreamResponse:
    return await serve(request, Route.SESSIONS, _delete)


def _store(request: web.Request) -> SessionStore:
    store = request.app[SERVICES].sessions
    if store is None:
        raise NotFound("Sessions are not enabled on this gateway (set `sessions:`).")
    return store


def _tenant(run: Run) -> str:
    assert run.call.tenant is not None, "authentication runs first"
    return run.call.tenant.name


async def _list(request: web.Request, run: Run) -> web.StreamResponse:
    store = _store(request)
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit: an integer from 1 to {MAX_PAGE}")
    after = request.query.get("after_id")
    page = await store.list(_tenant(run), limit=limit + 1, after=after)
    data = [
        {
            "id": info.session_id,
            "type": "session",
            "turns": info.turns,
            "created_at": info.created,
            "updated_at": info.updated,
        }
        for info in page[:limit]
    ]
    return _json(
        {
            "data": data,
            "has_more": len(page) > limit,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


async def _get(request: web.Request, run: Run) -> web.StreamResponse:
    session_id = request.match_info["session_id"]
    session = await _store(request).load(_tenant(run), session_id)
    if session is None:
        raise NotFound(f"No session {session_id!r}.")
    return _json(
        {
            "id": session.session_id,
            "type": "session",
            "system": session.system,
            "messages": session.messages,
            "version": session.version,
            "created_at": session.created,
            "updated_at": session.updated,
        }
    )


async def _delete(request: web.Request, run: Run) -> web.StreamResponse:
    session_id = request.match_info["session_id"]
    if not await _store(request).delete(_tenant(run), session_id):
        raise NotFound(f"No session {session_id!r}.")
    return _json({"id": session_id, "type": "session_deleted"})


def _json(payload: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")
