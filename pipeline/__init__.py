"""The pipeline: what happens to an account, from a read to an alert. Start reading here.

    read ─→ apply ─→ reconcile ─→ guard ─→ close ─→ alert

1. **Read** (``positions.services.account_fetch`` through a ``brokers.gateway.BrokerGateway``:
   ``brokers.mt5`` → ``brokers.bridge`` → the terminal). Three sources: the pull sync
   (``pipeline.tasks.sync_dispatch`` picks due accounts every second →
   ``pipeline.tasks.accounts_sync``), an EA push (``pipeline.apis.DeviceSyncApi`` →
   ``positions.push``), and the priority reads: the guards' re-check
   (``pipeline.tasks.liquidation_recheck``) and the mark-to-market trigger's
   (``pipeline.tasks.mark_to_market`` estimates every open account from quotes each second,
   ``risk.marking``, and asks ``pipeline.tasks.accounts_priority_read`` for the ones near a
   threshold; an estimate never closes anything). Each account is read through its
   terminal (``accounts.terminals``: sticky assignment, failover, one call sequence per
   terminal at a time, priority reads first).
   A failed read is "unknown": it stops here, the figures are kept and marked stale.
2. **Apply** (``positions.services.sync_results_apply``): positions, account figures, cash
   flows, equity snapshot and high-water mark, in one transaction per batch.
3. **Reconcile** (``reconciliation.services.accounts_reconcile``): what is open at the broker
   against what the bot expected (``reconciliation.matching``).
4. **Guard** (``guards.services.drawdown.accounts_guard``): drawdown and period levels on the
   figures just read; at critical a liquidation episode opens
   (``guards.services.episodes``), re-checks with a fresh read, then
5. **closes** every position (``guards.services.closes``, on the ``close`` queue).
6. **Alert**: each step raises its alerts in its own transaction through
   ``config.events.alert_raise``; ``notifications`` writes the outbox and delivers them to
   Telegram (``notifications.tasks``).

``pipeline.services.after_read`` is the one place where steps 3 and 4 follow a good read.
Dependencies point one way (``tests/test_architecture.py`` checks it):
``brokers`` ← ``accounts`` ← ``positions`` ← ``guards`` / ``reconciliation`` ←
``notifications`` ← ``risk`` ← ``pipeline`` ← ``dashboard``, ``config``'s URLs and beat.
"""
