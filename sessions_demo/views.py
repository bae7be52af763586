"""The demo pages: one small page app for login, drafts and feed (tokens live in its memory)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def demo_page(request: HttpRequest) -> HttpResponse:
    """Render the page app; its script shows the view that the path names."""
    # One document for all three paths: a full page load would lose the in-memory tokens.
    return render(request, "sessions_demo/app.html")
