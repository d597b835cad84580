"""The Files API (beta), simulated: upload, list, metadata, download, delete.

Files live in the simulator's memory, bounded in number and total size (the oldest
go first), so that a long test run cannot grow it without limit. Unlike the API, which
only lets files made by tools be downloaded, every file here is downloadable: the
point is to carry real bytes through a gateway both ways.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from claude_proxy.errors import InvalidRequest, NotFound, new_id
from claude_proxy.sim.validation import Message

__all__ = ["FileStore", "StoredFile", "check_file_sources", "list_page", "rfc3339"]

MAX_FILE_BYTES = 500 * 1000 * 1000  # the API's limit per file


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class StoredFile:
    id: str
    filename: str
    mime_type: str
    data: bytes
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "file",
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size_bytes": len(self.data),
            "created_at": rfc3339(self.created_at),
            "downloadable": True,
        }


class FileStore:
    def __init__(self, max_files: int = 1000, max_bytes: int = 1 << 30) -> None:
        self._files: OrderedDict[str, StoredFile] = OrderedDict()
        self._max_files = max_files
        self._max_bytes = max_bytes
        self._bytes = 0

    def add(self, filename: str, mime_type: str, data: bytes) -> StoredFile:
        stored = StoredFile(new_id("file_011C"), filename, mime_type, data)
        self._files[stored.id] = stored
        self._bytes += len(data)
        while len(self._files) > self._max_files or self._bytes > self._max_bytes:
            _, oldest = self._files.popitem(last=False)
            self._bytes -= len(oldest.data)
        return stored

    def __contains__(self, file_id: object) -> bool:
        return file_id in self._files

    def get(self, file_id: str) -> StoredFile:
        stored = self._files.get(file_id)
        if stored is None:
            raise NotFound(f"File not found: {file_id}")
        return stored

    def delete(self, file_id: str) -> None:
        stored = self.get(file_id)
        del self._files[file_id]
        self._bytes -= len(stored.data)

    def page(self, query: Any) -> dict[str, Any]:
        """Newest first, as the API lists; ``limit``, ``before_id`` and ``after_id``."""
        return list_page([f.to_api() for f in reversed(self._files.values())], query)


def list_page(items: list[dict[str, Any]], query: Any) -> dict[str, Any]:
    """One page of a list endpoint: ``{data, has_more, first_id, last_id, next_page}``."""
    try:
        limit = int(query.get("limit", 20))
    except ValueError:
        raise InvalidRequest("limit: Input should be a valid integer") from None
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit: Input should be between 1 and 1000")
    ids = [item["id"] for item in items]
    # Older SDKs page by after_id / before_id, newer ones by an opaque ``page`` cursor
    # (here: the last id of the page before).
    after, before = query.get("after_id") or query.get("page"), query.get("before_id")
    if after is not None:
        items = items[ids.index(after) + 1 :] if after in ids else []
        page, more = items[:limit], len(items) > limit
    elif before is not None:
        items = items[: ids.index(before)] if before in ids else []
        page, more = items[-limit:], len(items) > limit
    else:
        page, more = items[:limit], len(items) > limit
    return {
        "data": page,
        "has_more": more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "next_page": page[-1]["id"] if page and more and before is None else None,
    }


def check_file_sources(store: FileStore, messages: list[Message]) -> None:
    """A ``file`` source (document or image) must name a file the store holds."""
    for i, message in enumerate(messages):
        for j, block in enumerate(message.blocks):
            source = block.get("source")
            if isinstance(source, dict) and source.get("type") == "file":
                file_id = source.get("file_id")
                if not isinstance(file_id, str) or file_id not in store:
                    raise InvalidRequest(
                        f"messages.{i}.content.{j}.source.file_id: File not found: {file_id}"
                    )
