"""A client helper for the gateway: Messages streams that survive dropped connections."""

from claude_proxy.client.resumable import (
    STREAM_ID_HEADER,
    ResumableStream,
    StreamError,
    StreamInterrupted,
    stream_text,
)

__all__ = [
    "STREAM_ID_HEADER",
    "ResumableStream",
    "StreamError",
    "StreamInterrupted",
    "stream_text",
]
