"""HTTP handlers of the simulated Files and Message Batches APIs (their stores: files.py,
batches.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import BodyPartReader, web

from claude_proxy.errors import InvalidRequest
from claude_proxy.sim.batches import Batch, parse_batch
from claude_proxy.sim.files import MAX_FILE_BYTES
from claude_proxy.sim.http import betas, bytes_response, check_headers, header_float, json_response
from claude_proxy.sim.state import STATE

__all__ = [
    "batch_results",
    "cancel_batch",
    "create_batch",
    "delete_batch",
    "delete_file",
    "download_file",
    "file_metadata",
    "list_batches",
    "list_files",
    "retrieve_batch",
    "upload_file",
]


async def upload_file(request: web.Request) -> web.Response:
    check_headers(request)
    filename, mime_type, data = await read_upload(request)
    return json_response(request.app[STATE].files.add(filename, mime_type, data).to_api(), request)


async def list_files(request: web.Request) -> web.Response:
    check_headers(request)
    return json_response(request.app[STATE].files.page(request.query), request)


async def file_metadata(request: web.Request) -> web.Response:
    check_headers(request)
    stored = request.app[STATE].files.get(request.match_info["file_id"])
    return json_response(stored.to_api(), request)


async def download_file(request: web.Request) -> web.Response:
    check_headers(request)
    stored = request.app[STATE].files.get(request.match_info["file_id"])
    return bytes_response(stored.data, stored.mime_type.split(";")[0], request)


async def delete_file(request: web.Request) -> web.Response:
    check_headers(request)
    file_id = request.match_info["file_id"]
    request.app[STATE].files.delete(file_id)
    return json_response({"id": file_id, "type": "file_deleted"}, request)


async def read_upload(request: web.Request) -> tuple[str, str, bytes]:
    """The ``file`` part of a multipart upload: (filename, media type, bytes)."""
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequest("Content-Type must be multipart/form-data with a `file` part.")
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name != "file":
            continue
        chunks = bytearray()
        while chunk := await part.read_chunk(1 << 20):
            chunks += chunk
            if len(chunks) > MAX_FILE_BYTES:
                raise InvalidRequest(f"file: larger than {MAX_FILE_BYTES} bytes")
        mime = part.headers.get("Content-Type", "application/octet-stream")
        return part.filename or "upload", mime, bytes(chunks)
    raise InvalidRequest("file: Field required")


async def create_batch(request: web.Request) -> web.Response:
    version = check_headers(request)
    requests = parse_batch(await request.read())
    seconds = _seconds(request)
    base = f"{request.scheme}://{request.host}"
    batch = Batch(requests, version, betas(request), base)
    request.app[STATE].batches.start(request.app[STATE], batch, seconds)
    return json_response(batch.to_api(), request)


async def list_batches(request: web.Request) -> web.Response:
    check_headers(request)
    return json_response(request.app[STATE].batches.page(request.query), request)


async def retrieve_batch(request: web.Request) -> web.Response:
    check_headers(request)
    return json_response(_batch(request).to_api(), request)


async def cancel_batch(request: web.Request) -> web.Response:
    check_headers(request)
    batch = _batch(request)
    if batch.ended_at is None and batch.cancel_initiated_at is None:
        batch.cancel_initiated_at = datetime.now(UTC)
        batch.cancelled.set()
    return json_response(batch.to_api(), request)


async def batch_results(request: web.Request) -> web.Response:
    check_headers(request)
    batch = _batch(request)
    if batch.ended_at is None:
        raise InvalidRequest(f"Message batch {batch.id} has not finished processing.")
    return bytes_response(batch.results_jsonl(), "application/binary", request)


async def delete_batch(request: web.Request) -> web.Response:
    check_headers(request)
    batch_id = request.match_info["batch_id"]
    request.app[STATE].batches.delete(batch_id)
    return json_response({"id": batch_id, "type": "message_batch_deleted"}, request)


def _batch(request: web.Request) -> Batch:
    return request.app[STATE].batches.get(request.match_info["batch_id"])


def _seconds(request: web.Request) -> float:
    seconds = header_float(request, "x-sim-batch-seconds") or 0.0
    if not 0 <= seconds <= 3600:
        raise InvalidRequest("x-sim-batch-seconds: must be from 0 to 3600")
    return seconds
