"""Position sizing for a setup of up to three entries from one global risk %: pure Decimal.

No database, no Django: every figure is a ``Decimal`` in the account currency unless said
otherwise; prices are in the symbol's price units, volumes in lots.

Sources (MetaTrader 5 Help, "Margin and profit calculation"; MetaTrader 5 Python API):

- Loss at the stop, by tick value, in the account currency (what ``order_calc_profit`` does,
  ``SYMBOL_TRADE_TICK_VALUE`` being the value of one ``SYMBOL_TRADE_TICK_SIZE`` move of one
  lot in the account currency): ``|entry − stop| / tick_size × tick_value × lots``.
  See also :func:`positions.pnl.profit_by_tick_value`.
- The tick value of a *losing* move is ``SYMBOL_TRADE_TICK_VALUE_LOSS``: the profit currency
  converted at the rate less favourable to a loss (USDJPY in a USD account: 100 JPY / bid,
  where ``SYMBOL_TRADE_TICK_VALUE`` = ``SYMBOL_TRADE_TICK_VALUE_PROFIT`` is 100 JPY / ask).
  A stop is a loss, so it is sized with the loss tick value when the broker reports one
  (not ``None``, not 0), else with ``SYMBOL_TRADE_TICK_VALUE``: the same rule as
  ``brokers.gateway.SymbolSpec.loss_tick_value``. Sized with the profit tick value, the loss
  at the stop can exceed the budget by the spread's share (150.50 on 150.00 for USDJPY with
  a 50-pip rollover spread).
- Margin per lot at the entry price, in the account currency: ``order_calc_margin`` for
  1 lot (``lots × contract_size / leverage × margin_rate`` for forex, converted); the margin
  of ``v`` lots is ``v × margin_per_lot``.
- Volumes must be multiples of ``SYMBOL_VOLUME_STEP`` within ``SYMBOL_VOLUME_MIN`` …
  ``SYMBOL_VOLUME_MAX``.

The sizing itself:

- allocated budget = balance × risk % / 100, rounded DOWN to the cent;
- budget of entry k = balance × risk % / 100 × split_k / 100, rounded DOWN to the cent (so
  the three entry budgets never add up to more than the allocated budget);
- volume of entry k = budget_k / loss per lot, rounded DOWN to a multiple of the volume step
  (never up: that would break the budget), then clamped to the largest multiple of the step
  not above ``volume_max``;
- margin of entry k = volume_k × margin_per_lot, rounded half up to the cent;
- available margin = free margin × (1 − buffer % / 100), rounded half up to the cent; the
  setup is approved only if the total margin ≤ the available margin.

Arithmetic runs in the current decimal context (Python's default: 28 significant digits).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal

from brokers.gateway import Side
from positions.pnl import CENT, HUNDRED, money

Triple = tuple[Decimal, Decimal, Decimal]

MIN_RISK_PERCENT = Decimal("0.1")
MAX_RISK_PERCENT = Decimal(50)
ZERO = Decimal(0)
ZERO_MONEY = Decimal("0.00")
ZERO_TRIPLE: Triple = (ZERO, ZERO, ZERO)
ZERO_MONEY_TRIPLE: Triple = (ZERO_MONEY, ZERO_MONEY, ZERO_MONEY)

# Stable rejection codes, in the order they are checked.
BALANCE_NOT_POSITIVE = "balance_not_positive"
INVALID_RISK_PERCENT = "invalid_risk_percent"
INVALID_SPLITS = "invalid_splits"
STOP_EQUALS_ENTRY = "stop_equals_entry"
STOP_WRONG_SIDE = "stop_wrong_side"
TAKE_PROFIT_WRONG_SIDE = "take_profit_wrong_side"
INVALID_SYMBOL_SPEC = "invalid_symbol_spec"
VOLUME_BELOW_MINIMUM = "volume_below_minimum"
INSUFFICIENT_MARGIN = "insufficient_margin"
REJECTION_CODES = (
    BALANCE_NOT_POSITIVE, INVALID_RISK_PERCENT, INVALID_SPLITS, STOP_EQUALS_ENTRY,
    STOP_WRONG_SIDE, TAKE_PROFIT_WRONG_SIDE, INVALID_SYMBOL_SPEC, VOLUME_BELOW_MINIMUM,
    INSUFFICIENT_MARGIN,
)


@dataclass(frozen=True, slots=True)
class SizingInput:
    """One setup to size, with the account's figures and the symbol's specification.

    Money is in the account currency; prices in the symbol's price units; volumes in lots.
    """

    balance: Decimal            # account currency
    free_margin: Decimal        # account currency
    risk_percent: Decimal       # of the balance, for the whole setup (e.g. 3.0); 0.1 … 50
    splits: Triple              # percent of the risk per entry, sum 100 (e.g. 50, 35, 15)
    margin_buffer_percent: Decimal  # e.g. 20: only 80 % of free margin may be used; 0 … 100
    side: Side                  # brokers.gateway.Side (its value "buy" / "sell" too)
    entry_price: Decimal
    stop_loss: Decimal
    take_profit: Decimal | None
    tick_size: Decimal          # price units (MetaTrader 5: SYMBOL_TRADE_TICK_SIZE)
    tick_value: Decimal         # one tick_size move of 1 lot, ACCOUNT currency
                                # (MetaTrader 5: SYMBOL_TRADE_TICK_VALUE)
    volume_min: Decimal         # lots (SYMBOL_VOLUME_MIN)
    volume_step: Decimal        # lots (SYMBOL_VOLUME_STEP)
    volume_max: Decimal         # lots (SYMBOL_VOLUME_MAX)
    margin_per_lot: Decimal     # margin of 1 lot at the entry, account currency
                                # (MetaTrader 5: order_calc_margin for 1 lot)
    tick_value_loss: Decimal | None = None  # one tick_size move of 1 lot against the
                                # position, ACCOUNT currency, converted at the less
                                # favourable rate (SYMBOL_TRADE_TICK_VALUE_LOSS);
                                # None (or 0) when the broker does not report it

    @property
    def loss_tick_value(self) -> Decimal:
        """The tick value a stop is sized with, account currency per tick of 1 lot: the loss
        tick value when reported, else ``tick_value`` (brokers.gateway: the same rule as
        ``SymbolSpec.loss_tick_value``)."""
        return self.tick_value_loss if self.tick_value_loss else self.tick_value

    @property
    def tick_value_source(self) -> str:
        """Which input ``loss_tick_value`` is: "tick_value_loss" or "tick_value"."""
        return "tick_value_loss" if self.tick_value_loss else "tick_value"


@dataclass(frozen=True, slots=True)
class SizingResult:
    """The sizing of one setup, approved or not; every field is always filled.

    A rejected result has volumes and margins of zero (nothing may be sent) and carries the
    figures computed before the rejection: the allocated and per-entry budgets once the risk
    % and splits are valid, the loss per lot once the prices and symbol spec are valid, the
    available margin always. The would-be volumes or margins of a ``volume_below_minimum``
    or ``insufficient_margin`` rejection are in ``rejection_detail``.
    """

    setup_approved: bool
    rejection_reason: str | None     # a stable code from REJECTION_CODES; None when approved
    rejection_detail: str            # a sentence for people ("" when approved)
    global_risk_percent: Decimal     # the input risk %, as given
    allocated_risk_amount: Decimal   # balance × risk % / 100, rounded down to 2 dp
    risk_amount_entries: Triple      # per-entry budget, rounded down to 2 dp
    volume_entries: Triple           # lots, multiples of volume_step
    total_volume: Decimal            # lots
    estimated_margin_entries: Triple  # volume × margin_per_lot, 2 dp (half up)
    total_estimated_margin: Decimal  # sum of the entries' margins, 2 dp
    available_margin: Decimal        # free_margin × (1 − buffer / 100), 2 dp (half up)
    margin_utilization_percent: Decimal | None  # total margin / available × 100, 2 dp;
                                                # None when available ≤ 0
    loss_per_lot: Decimal            # at the stop, account currency, unrounded (the figure
                                     # the volumes were sized with)
    tick_value_used: Decimal         # the tick value of loss_per_lot, account currency per
                                     # tick of 1 lot (SizingInput.loss_tick_value)
    tick_value_source: str           # "tick_value_loss" or "tick_value": which one it is


def _floor_cents(amount: Decimal) -> Decimal:
    """Round a (non-negative) budget down to the cent: a risk budget is never rounded up."""
    return amount.quantize(CENT, rounding=ROUND_DOWN)


def loss_per_lot(*, entry_price: Decimal, stop_loss: Decimal, tick_size: Decimal,
                 tick_value: Decimal) -> Decimal:
    """Loss of 1 lot from entry to stop, in the account currency, unrounded, never negative.

    ``|entry − stop| / tick_size × tick_value`` (MetaTrader 5: profit by tick value, as
    ``order_calc_profit`` computes it). Pass the loss tick value
    (``SYMBOL_TRADE_TICK_VALUE_LOSS``, :attr:`SizingInput.loss_tick_value`): a stop is a loss.
    """
    return abs(entry_price - stop_loss) / tick_size * tick_value


def volume_for_budget(*, budget: Decimal, loss_per_lot: Decimal, volume_step: Decimal,
                      volume_max: Decimal) -> Decimal:
    """The largest multiple of ``volume_step`` (lots) whose loss at the stop fits ``budget``.

    ``budget`` in the account currency, ``loss_per_lot`` in the account currency per lot
    (both positive). The result ``v`` satisfies ``v × loss_per_lot ≤ budget``, compared in
    the decimal context's precision: a quotient that lands a hair under an exact step through
    rounding (150 / (500 × 0.666…67) = 0.4499…) still gives that step (0.45), and one that
    lands a hair over still does not. It is then clamped to the largest multiple of the step
    not above ``volume_max``.
    """
    steps = (budget / (loss_per_lot * volume_step)).to_integral_value(rounding=ROUND_FLOOR)
    if steps > 0 and steps * volume_step * loss_per_lot > budget:
        steps -= 1
    elif (steps + 1) * volume_step * loss_per_lot <= budget:
        steps += 1
    max_steps = (volume_max / volume_step).to_integral_value(rounding=ROUND_FLOOR)
    # written with the step's decimal places: 0.30, not 3E+1 × 0.01 = 0.3
    return (min(steps, max_steps) * volume_step).quantize(volume_step)


def _fmt(value: Decimal) -> str:
    return f"{value:f}"


def _six_places_down(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.000001"), rounding=ROUND_DOWN).normalize()


def size_position(inp: SizingInput) -> SizingResult:
    """Size the setup's entries from the global risk %; approve it or say why not.

    Checks, in this order, each giving a stable ``rejection_reason``: balance ≤ 0
    (``balance_not_positive``); risk % outside 0.1 … 50 inclusive (``invalid_risk_percent``);
    a negative split or splits not summing to 100 (``invalid_splits``); stop at the entry
    (``stop_equals_entry``); stop not below a buy's entry / above a sell's
    (``stop_wrong_side``); a take profit not above a buy's entry / below a sell's
    (``take_profit_wrong_side``); tick size, the tick value used (the loss tick value when
    reported, else the tick value), volume step / min / max or margin per lot not positive,
    or min > max (``invalid_symbol_spec``); then an entry with a non-zero
    split sized below ``volume_min`` (``volume_below_minimum``, never rounded up); then a
    total margin above the available margin (``insufficient_margin``).

    An entry whose split is 0 gets volume 0. ``side`` other than buy / sell
    (``brokers.gateway.Side``, or its value), or a margin buffer outside 0 … 100, is a
    programming error: ``ValueError``.
    """
    direction = Side(inp.side).sign  # ValueError for anything but buy / sell
    if not ZERO <= inp.margin_buffer_percent <= HUNDRED:
        raise ValueError(f"margin_buffer_percent must be within 0 … 100, "
                         f"got {inp.margin_buffer_percent}")
    progress = _Progress(available=money(
        inp.free_margin * (1 - inp.margin_buffer_percent / HUNDRED)))

    refusal = _check_risk(inp, progress)
    if refusal is None:
        refusal = _check_prices(inp, direction) or _check_spec(inp)
    if refusal is not None:
        return _rejected(inp, progress, *refusal)
    progress.per_lot = loss_per_lot(entry_price=inp.entry_price, stop_loss=inp.stop_loss,
                                    tick_size=inp.tick_size, tick_value=inp.loss_tick_value)
    volumes = (_entry_volume(inp, progress, 0), _entry_volume(inp, progress, 1),
               _entry_volume(inp, progress, 2))
    refusal = _check_volumes(inp, progress, volumes)
    if refusal is not None:
        return _rejected(inp, progress, *refusal)
    margins = (money(volumes[0] * inp.margin_per_lot), money(volumes[1] * inp.margin_per_lot),
               money(volumes[2] * inp.margin_per_lot))
    total_margin = margins[0] + margins[1] + margins[2]
    available = progress.available
    if total_margin > available:
        return _rejected(
            inp, progress, INSUFFICIENT_MARGIN,
            f"The entries ({' / '.join(_fmt(v) for v in volumes)} lots) need "
            f"{_fmt(total_margin)} of margin; only {_fmt(available)} is available "
            f"({_fmt(HUNDRED - inp.margin_buffer_percent)} % of the free margin "
            f"{_fmt(inp.free_margin)}).")

    return SizingResult(
        setup_approved=True, rejection_reason=None, rejection_detail="",
        global_risk_percent=inp.risk_percent, allocated_risk_amount=progress.allocated,
        risk_amount_entries=progress.budgets, volume_entries=volumes,
        total_volume=volumes[0] + volumes[1] + volumes[2],
        estimated_margin_entries=margins, total_estimated_margin=total_margin,
        available_margin=available,
        margin_utilization_percent=(money(total_margin / available * HUNDRED)
                                    if available > 0 else None),
        loss_per_lot=progress.per_lot, tick_value_used=inp.loss_tick_value,
        tick_value_source=inp.tick_value_source,
    )


# --- the steps of size_position ----------------------------------------------------------

Refusal = tuple[str, str]  # (a code from REJECTION_CODES, a sentence for people)


@dataclass(slots=True)
class _Progress:
    """The figures computed so far: a rejection carries those it got to."""

    available: Decimal
    allocated: Decimal = ZERO_MONEY
    budgets: Triple = ZERO_MONEY_TRIPLE
    per_lot: Decimal = ZERO


def _rejected(inp: SizingInput, progress: _Progress, code: str, detail: str) -> SizingResult:
    available = progress.available
    return SizingResult(
        setup_approved=False, rejection_reason=code, rejection_detail=detail,
        global_risk_percent=inp.risk_percent, allocated_risk_amount=progress.allocated,
        risk_amount_entries=progress.budgets, volume_entries=ZERO_TRIPLE, total_volume=ZERO,
        estimated_margin_entries=ZERO_MONEY_TRIPLE, total_estimated_margin=ZERO_MONEY,
        available_margin=available,
        margin_utilization_percent=ZERO_MONEY if available > 0 else None,
        loss_per_lot=progress.per_lot, tick_value_used=inp.loss_tick_value,
        tick_value_source=inp.tick_value_source,
    )


def _check_risk(inp: SizingInput, progress: _Progress) -> Refusal | None:
    """The account and the risk: balance, risk %, splits. Fills the allocated and per-entry
    budgets (rounded down to the cent) as soon as they are valid."""
    if inp.balance <= 0:
        return (BALANCE_NOT_POSITIVE,
                f"The balance is {_fmt(inp.balance)}: nothing can be risked.")
    if not MIN_RISK_PERCENT <= inp.risk_percent <= MAX_RISK_PERCENT:
        return (INVALID_RISK_PERCENT,
                f"The risk is {_fmt(inp.risk_percent)} % of the balance; it must be "
                f"between {MIN_RISK_PERCENT} % and {MAX_RISK_PERCENT} % inclusive.")
    risk_amount = inp.balance * inp.risk_percent / HUNDRED
    progress.allocated = _floor_cents(risk_amount)
    splits = inp.splits
    if len(splits) != 3 or any(s < 0 for s in splits) or sum(splits) != HUNDRED:
        return (INVALID_SPLITS,
                f"The splits {' / '.join(_fmt(s) for s in splits)} % must be three "
                f"non-negative percentages summing to 100 (they sum to "
                f"{_fmt(sum(splits, ZERO))}).")
    progress.budgets = (_floor_cents(risk_amount * splits[0] / HUNDRED),
                        _floor_cents(risk_amount * splits[1] / HUNDRED),
                        _floor_cents(risk_amount * splits[2] / HUNDRED))
    return None


def _check_prices(inp: SizingInput, direction: int) -> Refusal | None:
    """The stop and the take profit against the entry, on the side's side."""
    entry, stop, tp = inp.entry_price, inp.stop_loss, inp.take_profit
    if stop == entry:
        return (STOP_EQUALS_ENTRY,
                f"The stop loss {_fmt(stop)} equals the entry price: the risk per lot "
                f"would be zero.")
    if (stop - entry) * direction > 0:
        where = "below" if direction == 1 else "above"
        return (STOP_WRONG_SIDE,
                f"A {inp.side}'s stop loss must be {where} the entry {_fmt(entry)}; "
                f"it is {_fmt(stop)}.")
    if tp is not None and (tp - entry) * direction <= 0:
        where = "above" if direction == 1 else "below"
        return (TAKE_PROFIT_WRONG_SIDE,
                f"A {inp.side}'s take profit must be {where} the entry {_fmt(entry)}; "
                f"it is {_fmt(tp)}.")
    return None


def _check_spec(inp: SizingInput) -> Refusal | None:
    """The symbol's specification: every figure positive, volume_min ≤ volume_max."""
    spec = {"tick_size": inp.tick_size, inp.tick_value_source: inp.loss_tick_value,
            "volume_step": inp.volume_step, "volume_min": inp.volume_min,
            "volume_max": inp.volume_max, "margin_per_lot": inp.margin_per_lot}
    bad = [f"{name} {_fmt(value)}" for name, value in spec.items() if not value > 0]
    if bad:
        return (INVALID_SYMBOL_SPEC,
                f"The symbol specification is unusable: {', '.join(bad)} "
                f"(must be positive).")
    if inp.volume_min > inp.volume_max:
        return (INVALID_SYMBOL_SPEC,
                f"The symbol specification is unusable: volume_min "
                f"{_fmt(inp.volume_min)} is above volume_max {_fmt(inp.volume_max)}.")
    return None


def _entry_volume(inp: SizingInput, progress: _Progress, k: int) -> Decimal:
    """Entry ``k``'s volume (lots): 0 for a split of 0, else its budget's volume."""
    if inp.splits[k] == 0:
        return ZERO.quantize(inp.volume_step)
    return volume_for_budget(budget=progress.budgets[k], loss_per_lot=progress.per_lot,
                             volume_step=inp.volume_step, volume_max=inp.volume_max)


def _check_volumes(inp: SizingInput, progress: _Progress,
                   volumes: Triple) -> Refusal | None:
    """An entry with a non-zero split below the minimum volume (never rounded up)."""
    splits, budgets, per_lot = inp.splits, progress.budgets, progress.per_lot
    too_small = [k for k in range(3) if splits[k] > 0 and volumes[k] < inp.volume_min]
    if not too_small:
        return None
    parts = [f"entry {k + 1} ({_fmt(splits[k])} % of the risk): budget "
             f"{_fmt(budgets[k])} / loss per lot {_fmt(money(per_lot))} = "
             f"{_fmt(_six_places_down(budgets[k] / per_lot))} lots, rounded down to "
             f"{_fmt(volumes[k])}" for k in too_small]
    return (VOLUME_BELOW_MINIMUM,
            f"Below the minimum volume {_fmt(inp.volume_min)} lots, which would "
            f"exceed the risk budget if rounded up: {'; '.join(parts)}.")
