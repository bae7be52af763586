"""Test settings with a market of 500 symbols: each tick is ~40 KB, so a few MB pile up fast."""

from config.settings.test import *  # noqa: F403

QUOTES = {
    "SYMBOLS": {f"S{number:03d}": "100.00" for number in range(500)},
    "MAX_SYMBOLS": 500,
    "VOLATILITY": 0.01,
}
