"""Resumable streams: replay logs of SSE events, kept so a dropped client can read on."""

from claude_proxy.replay.base import (
    ReplayLog,
    ReplaySettings,
    StreamLost,
    StreamNotFound,
    require_owner,
)
from claude_proxy.replay.ids import (
    STREAM_ID_HEADER,
    InvalidEventId,
    format_event_id,
    new_stream_id,
    parse_last_event_id,
    with_event_id,
)
from claude_proxy.replay.registry import BACKENDS, open_replay_log

__all__ = [
    "BACKENDS",
    "STREAM_ID_HEADER",
    "InvalidEventId",
    "ReplayLog",
    "ReplaySettings",
    "StreamLost",
    "StreamNotFound",
    "format_event_id",
    "new_stream_id",
    "open_replay_log",
    "parse_last_event_id",
    "require_owner",
    "with_event_id",
]
