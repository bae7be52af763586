"""Routes of the gateway app: `urlpatterns` for its pages, `api_urlpatterns` under /api/v1/."""

from django.urls import path
from django.views.generic import TemplateView

from gateway import api

app_name = "gateway"

urlpatterns = [
    path(
        "gateway/", TemplateView.as_view(template_name="gateway/dashboard.html"), name="dashboard"
    ),
    path("metrics", api.metrics, name="metrics"),
]

api_urlpatterns = [
    path("gateway/purge/", api.PurgeApi.as_view(), name="purge"),
    path("gateway/stats/", api.StatsApi.as_view(), name="stats"),
]
