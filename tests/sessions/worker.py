"""A process that uses a session store until its test SIGKILLs it.

``python -m tests.sessions.worker append|lock URL KEY_PREFIX``: prints ``done <version>``
once its append returned, or ``locked`` once it holds the lock (lease 0.5 s), then sleeps.
"""

from __future__ import annotations

import asyncio
import sys

from claude_proxy.sessions import SessionSettings, open_store

TENANT = "tenant-a"
TURN = {"role": "user", "content": [{"type": "text", "text": "断电之后也要记得这句话"}]}
LEASE = 0.5


async def main(action: str, url: str, prefix: str) -> None:
    settings = SessionSettings(url=url, key_prefix=prefix, cache_size=0)
    store = await open_store(url, settings)
    if action == "append":
        version = await store.append(TENANT, "durable", [TURN], expected_version=0)
        print(f"done {version}", flush=True)
        await asyncio.sleep(3600)
    else:
        async with store.lock(TENANT, "locked", wait=5, lease=LEASE):
            print("locked", flush=True)
            await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
