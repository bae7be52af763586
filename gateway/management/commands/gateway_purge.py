"""Purge the gateway's shared response cache from the command line: by tag, by URL, or all of it."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from gateway import purge


class Command(BaseCommand):
    help = "Drop shared-cache entries: --tags a b, --urls /x/ /y/, or --all (after a deploy)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--tags", nargs="+", help="Cache-Tag values, e.g. product:42 products")
        group.add_argument("--urls", nargs="+", help="URL paths, e.g. /api/v1/products/42/")
        group.add_argument("--all", action="store_true", dest="everything", help="Every entry.")

    def handle(
        self,
        *args: Any,
        tags: list[str] | None = None,
        urls: list[str] | None = None,
        everything: bool = False,
        **options: Any,
    ) -> None:
        if urls and not all(url.startswith("/") for url in urls):
            raise CommandError("--urls takes paths that start with /.")
        if tags:
            dropped = purge.tags(tags)
        elif urls:
            dropped = purge.urls(urls)
        else:
            dropped = purge.everything()
        self.stdout.write(f"Dropped {dropped} entries.")
