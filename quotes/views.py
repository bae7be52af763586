"""The /quotes/ page: a live table and chart per symbol, fed by the WebSocket."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from quotes.selectors import market


def quotes_page(request: HttpRequest) -> HttpResponse:
    """Render the page; its script fills in prices from the history API and the WebSocket."""
    return render(request, "quotes/quotes.html", {"symbols": list(market().opening)})
