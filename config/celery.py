"""The Celery app: `celery -A config.celery:app worker` and `… beat`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("stateless_cacheable")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
