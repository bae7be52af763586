"""Routes of sessions_demo: `urlpatterns` for its pages, `api_urlpatterns` under /api/v1/."""

from django.urls import path

from sessions_demo import api, views

app_name = "sessions_demo"

urlpatterns = [
    path("login/", views.demo_page, name="login"),
    path("drafts/", views.demo_page, name="drafts"),
    path("feed/", views.demo_page, name="feed"),
    path(".well-known/jwks.json", api.jwks, name="jwks"),
]

api_urlpatterns = [
    path("auth/token/", api.TokenObtainApi.as_view(), name="token"),
    path("auth/token/refresh/", api.TokenRefreshApi.as_view(), name="token-refresh"),
    path("auth/token/verify/", api.TokenVerifyApi.as_view(), name="token-verify"),
    path("auth/logout/", api.LogoutApi.as_view(), name="logout"),
    path("auth/register/", api.RegisterApi.as_view(), name="register"),
    path("me/", api.MeApi.as_view(), name="me"),
    path("me/preferences/", api.PreferencesApi.as_view(), name="preferences"),
    path("feed/", api.FeedApi.as_view(), name="feed"),
    path("drafts/", api.DraftListApi.as_view(), name="draft-list"),
    path("drafts/<str:draft_id>/", api.DraftDetailApi.as_view(), name="draft-detail"),
]
