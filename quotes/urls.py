"""Routes of the quotes app: `urlpatterns` for its pages, `api_urlpatterns` under /api/v1/."""

from django.urls import path

from quotes import api, sse, views

app_name = "quotes"

urlpatterns = [path("quotes/", views.quotes_page, name="page")]

api_urlpatterns = [
    path("quotes/", api.QuoteListApi.as_view(), name="list"),
    # Before the symbol route, which would otherwise take "stream" for a symbol.
    path("quotes/stream/", sse.quote_stream, name="stream"),
    path("quotes/<str:symbol>/", api.QuoteDetailApi.as_view(), name="detail"),
    path("quotes/<str:symbol>/history/", api.QuoteHistoryApi.as_view(), name="history"),
]
