"""The Celery app: `celery -A config.celery:app worker` and `… beat`."""

import os

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("stateless_cacheable")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def check_redis_at_start(**kwargs: object) -> None:
    """Stop a worker or beat at start-up when its sentinels do not know their master."""
    from django.conf import settings

    from config.redis_wiring import check_sentinels

    check_sentinels(settings.REDIS, settings.REDIS_TIMEOUT)


worker_init.connect(check_redis_at_start)
beat_init.connect(check_redis_at_start)
