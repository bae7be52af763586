"""Fixtures of the quotes tests: the test Redis, emptied, and the quotes settings to tweak."""

import pytest


@pytest.fixture
def quotes_settings(settings, redis_client):
    """The QUOTES settings dict, empty (the defaults); set keys on it to override them."""
    settings.QUOTES = {}
    return settings.QUOTES
