"""One object per event loop (a Redis connection belongs to its loop), found cheaply per request."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """Make one T per event loop, on its first use there; return the running loop's.

    A cache HIT asks twice (its Redis client, its in-process cache). asyncio.get_running_loop() is
    a getpid() system call on Python 3.11, and a weak dictionary's lookup makes a weak reference;
    so each thread keeps the loop it last asked about and its T, which are still the answer while
    that loop runs: a thread runs one loop at a time.
    """

    def __init__(self, make: Callable[[], T]) -> None:
        self.make = make
        self.instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        self.last = threading.local()

    def __call__(self) -> T:
        last = self.last
        loop: asyncio.AbstractEventLoop | None = getattr(last, "loop", None)
        if loop is not None and loop.is_running():
            kept: T = last.instance
            return kept
        loop = asyncio.get_running_loop()
        instance = self.instances.get(loop)
        if instance is None:
            instance = self.instances[loop] = self.make()
        last.loop, last.instance = loop, instance
        return instance
