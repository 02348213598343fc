"""Guards (pipeline steps 4–5), one module per concern:

- ``platform``: the kill switch (ACTIVE / REDUCING / HALTED) and the trading block;
- ``configuration``: guard settings, overrides and what applies to an account;
- ``drawdown``: drawdown and period levels after every good read (``accounts_guard``);
- ``episodes``: liquidation episodes: warn, re-check with a fresh read, close all;
- ``closes``: idempotent close requests and the liquidation's completion;
- ``market``: the market guard (gaps, spreads, liquidity);
- ``sweep``: resumes what a lost task left behind;
- ``alerts``: the audit row and the member's alert, in one transaction.

Safety rules: the guard only judges figures from a read that just succeeded; a failed read
never liquidates anything; one episode per account; a close is committed as "sending"
before it goes out and looked up before it is sent again; a read-only account is alerted,
never closed. The names below are this package's public interface.
"""

from guards.services.alerts import guard_alerts_save
from guards.services.closes import (
    Outcome,
    close_request_cancel,
    close_request_execute,
    close_request_open,
    close_requests_execute,
    manual_close,
)
from guards.services.configuration import (
    effective_settings,
    guard_override_update,
    guard_settings_get,
    guard_settings_update,
)
from guards.services.drawdown import accounts_guard
from guards.services.episodes import liquidation_recheck
from guards.services.market import market_guard_scan
from guards.services.platform import (
    account_trading_blocked,
    platform_is_active,
    platform_state_get,
    platform_state_set,
)
from guards.services.sweep import guards_sweep

__all__ = [
    "Outcome", "account_trading_blocked", "accounts_guard", "close_request_cancel",
    "close_request_execute", "close_request_open", "close_requests_execute",
    "effective_settings", "guard_alerts_save",
    "guard_override_update", "guard_settings_get", "guard_settings_update", "guards_sweep",
    "liquidation_recheck", "manual_close", "market_guard_scan", "platform_is_active",
    "platform_state_get", "platform_state_set",
]
