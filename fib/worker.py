"""The one writer of kernel state.

Everything that talks to the kernel (netlink route batches, ``ip``/``nft``/``tc``
subprocesses of the dataplane, counter reads) runs on a single worker thread, in
the order it was submitted.  The event loop only queues work and awaits results,
so keepalives and UPDATE processing never wait on the kernel; one thread means
the kernel objects are never written by two hands at once.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class KernelWorker:
    def __init__(self, name: str = "l3fab-kernel") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker (after everything queued before it)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """From outside the event loop (start-up, tests): queue and wait."""
        return self._pool.submit(fn, *args).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


__all__ = ["KernelWorker"]
