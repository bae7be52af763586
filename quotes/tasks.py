"""Celery tasks of the quotes app; beat runs `tick` every second (CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from quotes import services


@shared_task(ignore_result=True)  # type: ignore[untyped-decorator]  # celery ships no type hints
def tick() -> int | None:
    """Advance the market one tick; a duplicate for the same second does nothing."""
    moved = services.tick()
    return None if moved is None else moved["seq"]
