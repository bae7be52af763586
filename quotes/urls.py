"""Routes of the quotes app: `urlpatterns` for its pages, `api_urlpatterns` under /api/v1/."""

from django.urls import path  # noqa: F401

app_name = "quotes"

urlpatterns: list = []

api_urlpatterns: list = []
