"""Routes of sessions_demo: `urlpatterns` for its pages, `api_urlpatterns` under /api/v1/."""

from django.urls import path  # noqa: F401

app_name = "sessions_demo"

urlpatterns: list = []

api_urlpatterns: list = []
