"""Create the demo accounts, idempotently; refuse outside DEBUG, where they would be a back door."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

# (username, password, is_staff): printed by `make run`, so they are public by design.
DEMO_ACCOUNTS = [
    ("admin", "admin-demo-password", True),
    ("alice", "alice-demo-password", False),
    ("bob", "bob-demo-password", False),
]


class Command(BaseCommand):
    help = "Create the demo accounts (DEBUG only) and print them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-debug", action="store_true", help="Do nothing, quietly, when DEBUG is off."
        )

    def handle(self, *args: object, if_debug: bool = False, **options: object) -> None:
        if not settings.DEBUG:
            if if_debug:
                return
            raise CommandError("Demo accounts are created only with DEBUG on.")
        User = get_user_model()
        for username, password, is_staff in DEMO_ACCOUNTS:
            user, _ = User.objects.get_or_create(username=username)
            user.is_staff = user.is_superuser = is_staff
            user.set_password(password)
            user.save()
            role = "staff, admin" if is_staff else "user"
            self.stdout.write(f"  {username:<6} / {password:<20} ({role})")
