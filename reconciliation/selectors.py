"""Reads behind GET /api/v1/reconciliation/{user_id} and the admin."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from accounts.models import TradingAccount, User
from reconciliation.models import OpenDivergence, ReconciliationLog

RECENT_RESOLVED = 20


def user_reconciliation(user: User) -> dict[str, Any]:
    """Per linked account: sync state, open divergences, recent resolved ones, counts by
    kind (of divergences opened or events occurred, all time). Four queries in all."""
    accounts = list(TradingAccount.objects.filter(user=user, is_active=True).order_by("pk"))
    ids = [a.pk for a in accounts]
    open_rows = list(OpenDivergence.objects.filter(account_id__in=ids).order_by("-opened_at"))
    resolved = list(
        ReconciliationLog.objects.filter(account_id__in=ids,
                                         event=ReconciliationLog.Event.RESOLVED)
        .order_by("-created_at")[: RECENT_RESOLVED * max(len(ids), 1)]
    )
    counts = (ReconciliationLog.objects.filter(account_id__in=ids)
              .exclude(event=ReconciliationLog.Event.RESOLVED)
              .values("account_id", "kind").annotate(n=Count("id")))
    counts_of: dict[int, dict[str, int]] = {}
    for row in counts:
        counts_of.setdefault(row["account_id"], {})[row["kind"]] = row["n"]
    return {
        "user_id": user.pk,
        "accounts": [
            {
                "account": account,
                "open_divergences": [r for r in open_rows if r.account_id == account.pk],
                "recent_resolved": [r for r in resolved
                                    if r.account_id == account.pk][:RECENT_RESOLVED],
                "counts_by_kind": counts_of.get(account.pk, {}),
            }
            for account in accounts
        ],
    }
