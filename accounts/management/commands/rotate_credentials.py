from __future__ import annotations

from django.core.management.base import BaseCommand

from accounts.services import trading_account_credentials_rotate


class Command(BaseCommand):
    help = "Re-encrypt broker credentials under the newest FIELD_ENCRYPTION_KEYS key."

    def handle(self, *args, **options):
        self.stdout.write(f"re-encrypted {trading_account_credentials_rotate()} accounts")
