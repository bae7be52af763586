"""A minimal Server-Sent Events reader for the tests: one dict per event, comments included."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator


def read_events(lines: Iterable[str]) -> Iterator[dict]:
    """Yield each event as {"event", "id", "data"} (data parsed), {"retry"} or {"comment"}."""
    fields: dict = {}
    for line in lines:
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = json.loads(value) if name == "data" else value


def next_of(events: Iterator[dict], event: str) -> dict:
    """Return the next event named `event`, skipping comments and other events."""
    return next(item for item in events if item.get("event") == event)
