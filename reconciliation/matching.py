"""Match broker positions to the bot's expected trades and classify every divergence.

Pure functions, no database, no Django: the heart of reconciliation. Inputs are plain
frozen dataclasses built by ``reconciliation.services`` from the last successful sync.

Matching, in this order (each position and each expected trade is used at most once):

1. **By tag.** A position whose ``magic`` is the bot's and whose comment carries a tag
   (``extract_tag``) is matched to the expected trade with that tag, whatever its volume
   (a partial fill keeps its tag), provided symbol and side agree.
2. **By shape.** A position with the bot's magic but no tag (the broker lost or rewrote
   the comment; a person's position is never claimed, and a tag that named no trade does
   not fall back to shape) is matched to an unmatched expected trade of the
   same symbol and side whose volume is within ``volume_percent`` and whose ``created_at``
   is within ``open_window`` of the position's opening time; among candidates the closest
   volume, then the closest time, then the lowest id wins. Positions are visited in
   (opened_at, ticket) order, so the result does not depend on input order.
3. An expected trade that already has a ``ticket`` (matched in an earlier cycle) is matched
   to that ticket if the broker still holds it. This step runs *first*, before tags: a
   ticket is the strongest evidence. If the ticket is no longer held, its closing record
   (``Closed``) ends the trade (``Result.closed``); with neither, the trade is ``missing``.
   Trades with a ticket never take part in steps 1 and 2.

Divergence kinds (``Kind``):

- ``missing``: an expected trade that should be open (status open, or pending for longer than
  ``pending_grace``) has no position and no closing record.
- ``unexpected``: a position with the bot's magic that no expected trade claims.
- ``manual``: a position with another magic (a person's); reported, never touched.
- ``partial_fill``: matched, filled volume below expected by more than ``volume_percent``.
- ``volume_mismatch``: matched, filled volume above expected by more than ``volume_percent``.
- ``slippage``: matched, |price_open − requested_price| above ``slippage_points`` points.
- ``sl_tp_mismatch``: matched, SL or TP differ from the expected ones by more than
  ``stop_points`` points (or one is set and the other not).
- ``closed_externally`` (event): an expected trade the bot still holds open whose position
  closed at the broker for a reason other than the bot's own (sl / tp / so / client / other /
  unknown), from its closing record.
- ``gap`` (event): such a close by stop loss at a price beyond the stop by more than
  ``gap_points`` points (a weekend gap).

State kinds are open until they stop appearing (the service logs "opened" and "resolved");
event kinds happen once (the service logs them once and closes the expected trade).
"""

from __future__ import annotations

import enum
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from brokers.gateway import Side

TAG_PREFIX = "bo-"
MAX_TAG_LENGTH = 26  # MetaTrader 5 comments are short (31 chars); leave room for a broker's


class Kind(enum.StrEnum):
    MISSING = "missing"
    UNEXPECTED = "unexpected"
    MANUAL = "manual"
    PARTIAL_FILL = "partial_fill"
    VOLUME_MISMATCH = "volume_mismatch"
    SLIPPAGE = "slippage"
    SL_TP_MISMATCH = "sl_tp_mismatch"
    CLOSED_EXTERNALLY = "closed_externally"
    GAP = "gap"


EVENT_KINDS = frozenset({Kind.CLOSED_EXTERNALLY, Kind.GAP})


@dataclass(frozen=True, slots=True)
class Expected:
    """What the bot placed or will place. Prices in the quote currency, volume in lots."""

    id: int
    symbol: str
    side: Side
    volume: Decimal
    requested_price: Decimal | None
    sl: Decimal | None
    tp: Decimal | None
    magic: int
    tag: str
    status: str  # "pending" | "open" (closed / cancelled / failed ones are not passed in)
    created_at: datetime
    ticket: int | None = None  # the broker position once matched


@dataclass(frozen=True, slots=True)
class Held:
    """A position open at the broker now (from the last successful positions read)."""

    ticket: int
    symbol: str
    side: Side
    volume: Decimal
    price_open: Decimal
    sl: Decimal | None
    tp: Decimal | None
    magic: int
    comment: str
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class Closed:
    """A position that closed at the broker, from its closing deal.

    ``reason`` is "client", "expert", "sl", "tp", "so", "other" or "unknown".
    """

    ticket: int
    symbol: str
    side: Side
    reason: str
    close_price: Decimal | None
    sl: Decimal | None
    closed_at: datetime


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Thresholds. Points are the symbol's ``point`` (``points`` maps symbol → point)."""

    bot_magic: int
    volume_percent: Decimal = Decimal(5)
    slippage_points: Decimal = Decimal(20)
    stop_points: Decimal = Decimal(2)
    gap_points: Decimal = Decimal(50)
    open_window: timedelta = timedelta(minutes=5)
    pending_grace: timedelta = timedelta(seconds=60)
    points: Mapping[str, Decimal] = field(default_factory=dict)
    default_point: Decimal = Decimal("0.00001")

    def point(self, symbol: str) -> Decimal:
        return self.points.get(symbol, self.default_point)


@dataclass(frozen=True, slots=True)
class Divergence:
    """One divergence. ``key`` is stable across cycles for the same underlying fact, so
    the service can tell "still there" from "new". ``figures`` is JSON-safe (strings)."""

    kind: Kind
    key: str
    expected_id: int | None
    ticket: int | None
    figures: dict[str, str]

    @property
    def is_event(self) -> bool:
        return self.kind in EVENT_KINDS


@dataclass(frozen=True, slots=True)
class Result:
    matches: dict[int, int]  # expected id → position ticket
    divergences: list[Divergence]
    closed: dict[int, Closed]  # expected id → its closing record (the trade is over)


def make_tag(token: str) -> str:
    """The comment tag for an expected trade: ``bo-`` + ``token`` (≤ 26 characters)."""
    tag = f"{TAG_PREFIX}{token}"
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"tag {tag!r} is longer than {MAX_TAG_LENGTH} characters")
    return tag


def extract_tag(comment: str | None) -> str | None:
    """The tag in an order comment, or None. The tag is the first word starting "bo-".

    Tolerant of what brokers do to comments: empty or missing comments, text appended
    after the tag ("bo-x1 [sl 1.08000]"), and a suffix glued on without a space
    ("bo-x1[sl 1.08000]"); a bare "bo-" with nothing after it is not a tag.
    """
    if not comment:
        return None
    for word in comment.split():
        if word.startswith(TAG_PREFIX):
            # Tags are made by ``make_tag`` and never contain "["; anything from it on is the
            # broker's annotation glued onto the tag.
            tag = word.split("[", 1)[0]
            if len(tag) > len(TAG_PREFIX):
                return tag
    return None


def reconcile(*, expected: Sequence[Expected], held: Sequence[Held], closed: Sequence[Closed],
              now: datetime, tolerances: Tolerances) -> Result:
    """Match and classify (see the module docstring). O(n log n) in the input sizes.

    The passes run in this order, each only on what the previous ones left unmatched:

    1. expected trades that carry a ``ticket`` (the docstring's step 3, done first because
       a ticket is the strongest evidence): held → match, closed → ``Result.closed`` (plus
       ``closed_externally`` / ``gap`` unless the bot closed it itself), else ``missing``;
    2. tagged bot positions → the expected trade with that tag (same symbol and side);
    3. untagged bot positions → by shape (symbol, side, volume, time);
    4. what is left: ``missing`` trades, ``unexpected`` / ``manual`` positions.

    Inputs are sorted internally (expected by id, held by (opened_at, ticket), closed by
    ticket), so the result, including the order of ``divergences``, does not depend on
    the order of the input sequences.
    """
    return _Reconciler(expected, held, closed, now, tolerances).run()


# --------------------------------------------------------------------------- internals

_PERCENT_QUANTUM = Decimal("0.01")


def _s(value: object) -> str:
    """A figure: ``str(value)``; None (an unset SL / TP / price) becomes ""."""
    return "" if value is None else str(value)


def _plain(value: Decimal) -> str:
    """A computed number without exponent notation (0.00942 / 0.00001 → "942")."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@dataclass(slots=True)
class _ShapeGroup:
    """Unmatched expected trades of one (symbol, side), sorted by (created_at, id).

    ``times`` is the bisect key. ``skip`` is a "next unused index" forest (union-find
    style, with path compression): a used trade points past itself, so the scan of a
    time window jumps over trades already taken instead of walking them again. Slot
    ``len(trades)`` is the sentinel.
    """

    trades: list[Expected]
    times: list[datetime]
    skip: list[int]

    def next_free(self, i: int) -> int:
        root = i
        while self.skip[root] != root:
            root = self.skip[root]
        while self.skip[i] != root:  # path compression
            self.skip[i], i = root, self.skip[i]
        return root

    def take(self, i: int) -> None:
        self.skip[i] = i + 1


class _Reconciler:
    """One reconciliation run. A class only to share the sorted inputs and the point cache
    between passes; ``reconcile`` is the public entry point."""

    def __init__(self, expected: Sequence[Expected], held: Sequence[Held],
                 closed: Sequence[Closed], now: datetime, tolerances: Tolerances) -> None:
        self.expected = sorted(expected, key=lambda e: e.id)
        self.held = sorted(held, key=lambda h: (h.opened_at, h.ticket))
        self.now = now
        self.tol = tolerances
        self.held_by_ticket = {h.ticket: h for h in self.held}
        # Sorted by (ticket, closed_at) so that, should a ticket have two closing records,
        # the latest one deterministically wins.
        self.closed_by_ticket = {
            c.ticket: c for c in sorted(closed, key=lambda c: (c.ticket, c.closed_at))}
        self._points: dict[str, Decimal] = {}

        self.matches: dict[int, Held] = {}  # expected id → position
        self.closed: dict[int, Closed] = {}  # expected id → closing record
        self.used_tickets: set[int] = set()  # held tickets already matched
        self.claimed_closed: set[int] = set()  # closing records already given to a trade
        self.ticket_missing: set[int] = set()  # expected ids found neither held nor closed

    def point(self, symbol: str) -> Decimal:
        point = self._points.get(symbol)
        if point is None:
            point = self._points[symbol] = self.tol.point(symbol)
        return point

    # ------------------------------------------------------------------------ passes

    def run(self) -> Result:
        self.match_by_ticket()
        self.match_by_tag()
        self.match_by_shape()
        return Result(
            matches={e.id: self.matches[e.id].ticket
                     for e in self.expected if e.id in self.matches},
            divergences=self.classify(),
            closed={e.id: self.closed[e.id] for e in self.expected if e.id in self.closed},
        )

    def match_by_ticket(self) -> None:
        """Trades matched in an earlier cycle keep their ticket if the broker still holds
        it, or are over if it closed. Done first: a ticket beats any tag or shape."""
        for e in self.expected:
            if e.ticket is None:
                continue
            # Two trades claiming one ticket is a data error; the lowest id (visited first)
            # gets it and the other one is reported missing rather than double-matched.
            position = self.held_by_ticket.get(e.ticket)
            if position is not None and e.ticket not in self.used_tickets:
                self.matches[e.id] = position
                self.used_tickets.add(e.ticket)
                continue
            record = self.closed_by_ticket.get(e.ticket)
            if position is None and record is not None and e.ticket not in self.claimed_closed:
                self.closed[e.id] = record
                self.claimed_closed.add(e.ticket)
                continue
            self.ticket_missing.add(e.id)

    def open_candidates(self) -> list[Expected]:
        """Expected trades still looking for a position: no ticket, not matched yet."""
        return [e for e in self.expected if e.ticket is None and e.id not in self.matches]

    def match_by_tag(self) -> None:
        """A bot position whose comment carries a tag takes the trade with that tag,
        whatever its volume (a partial fill keeps its tag)."""
        by_tag: dict[str, Expected] = {}
        for e in self.open_candidates():
            by_tag.setdefault(e.tag, e)  # tags are unique; if not, the lowest id wins
        bot_magic = self.tol.bot_magic
        for h in self.held:
            if h.magic != bot_magic or h.ticket in self.used_tickets:
                continue
            tag = extract_tag(h.comment)
            found = by_tag.get(tag) if tag is not None else None
            # A tag naming a trade on another symbol or side is not trusted: the position
            # is left unexpected and the trade missing, so a person looks at both.
            if found is None or found.id in self.matches or (
                    (found.symbol, found.side) != (h.symbol, h.side)):
                continue
            self.matches[found.id] = h
            self.used_tickets.add(h.ticket)

    def match_by_shape(self) -> None:
        """An untagged bot position (the broker lost or rewrote the comment) takes the
        unmatched trade of the same symbol and side with a volume within
        ``volume_percent`` and ``created_at`` within ``open_window`` of its opening;
        closest volume, then closest time, then lowest id.

        Trades are grouped by (symbol, side) and sorted by created_at, so each position
        bisects to its time window instead of scanning every trade.
        """
        groups: dict[tuple[str, str], _ShapeGroup] = {}
        for e in sorted(self.open_candidates(), key=lambda e: (e.created_at, e.id)):
            group = groups.get((e.symbol, e.side))
            if group is None:
                group = groups[(e.symbol, e.side)] = _ShapeGroup([], [], [])
            group.trades.append(e)
            group.times.append(e.created_at)
        for group in groups.values():
            group.skip = list(range(len(group.trades) + 1))

        bot_magic = self.tol.bot_magic
        window = self.tol.open_window
        percent = self.tol.volume_percent
        for h in self.held:
            # Only bot positions: a person's position (other magic) is never claimed.
            if h.magic != bot_magic or h.ticket in self.used_tickets:
                continue
            if extract_tag(h.comment) is not None:
                continue  # tagged: pass 2 decided, a wrong tag must not fall back to shape
            group = groups.get((h.symbol, h.side))
            if group is None:
                continue
            lo = bisect_left(group.times, h.opened_at - window)
            hi = bisect_right(group.times, h.opened_at + window)
            best: tuple[Decimal, timedelta, int] | None = None
            best_index = -1
            i = group.next_free(lo)
            while i < hi:
                e = group.trades[i]
                diff = abs(h.volume - e.volume)
                # |Δvolume| / expected ≤ percent / 100, without dividing (volume may be 0).
                if diff * 100 <= percent * e.volume:
                    rank = (diff, abs(h.opened_at - e.created_at), e.id)
                    if best is None or rank < best:
                        best, best_index = rank, i
                i = group.next_free(i + 1)
            if best is not None:
                e = group.trades[best_index]
                group.take(best_index)
                self.matches[e.id] = h
                self.used_tickets.add(h.ticket)

    # ------------------------------------------------------------------- classify

    def classify(self) -> list[Divergence]:
        """Every divergence: trade-based ones in expected-id order, then position-based
        ones in (opened_at, ticket) order."""
        out: list[Divergence] = []
        for e in self.expected:
            position = self.matches.get(e.id)
            if position is not None:
                self.check_match(e, position, out)
            elif e.id in self.closed:
                self.check_close(e, self.closed[e.id], out)
            elif e.id in self.ticket_missing or self.should_be_open(e):
                out.append(self.trade_divergence(Kind.MISSING, e, e.ticket, {
                    "status": e.status,
                    "volume": _s(e.volume),
                    "requested_price": _s(e.requested_price),
                    "created_at": e.created_at.isoformat(),
                }))
        bot_magic = self.tol.bot_magic
        for h in self.held:
            if h.ticket in self.used_tickets:
                continue
            kind = Kind.UNEXPECTED if h.magic == bot_magic else Kind.MANUAL
            out.append(Divergence(kind=kind, key=f"{kind}:t{h.ticket}", expected_id=None,
                                  ticket=h.ticket, figures={
                                      "ticket": str(h.ticket),
                                      "symbol": h.symbol,
                                      "side": h.side,
                                      "volume": _s(h.volume),
                                      "price_open": _s(h.price_open),
                                      "sl": _s(h.sl),
                                      "tp": _s(h.tp),
                                      "magic": str(h.magic),
                                      "comment": h.comment or "",
                                      "opened_at": h.opened_at.isoformat(),
                                  }))
        return out

    def should_be_open(self, e: Expected) -> bool:
        """An unmatched trade is missing once it should be at the broker: open, or pending
        longer than ``pending_grace`` (the order may simply not have arrived yet)."""
        if e.status == "open":
            return True
        return e.status == "pending" and self.now - e.created_at > self.tol.pending_grace

    @staticmethod
    def trade_divergence(kind: Kind, e: Expected, ticket: int | None,
                         figures: dict[str, str]) -> Divergence:
        base = {"tag": e.tag, "ticket": _s(ticket), "symbol": e.symbol, "side": e.side}
        return Divergence(kind=kind, key=f"{kind}:e{e.id}", expected_id=e.id, ticket=ticket,
                          figures={**base, **figures})

    def check_match(self, e: Expected, h: Held, out: list[Divergence]) -> None:
        """Volume, price and stops of a matched position against its trade; a match can
        yield several divergences (e.g. a partial fill that also slipped)."""
        tol = self.tol
        point = self.point(h.symbol)

        diff = h.volume - e.volume
        if abs(diff) * 100 > tol.volume_percent * e.volume:  # strictly beyond the tolerance
            kind = Kind.PARTIAL_FILL if diff < 0 else Kind.VOLUME_MISMATCH
            percent = (diff * 100 / e.volume).quantize(_PERCENT_QUANTUM) if e.volume else None
            out.append(self.trade_divergence(kind, e, h.ticket, {
                "expected_volume": _s(e.volume),
                "actual_volume": _s(h.volume),
                "difference_percent": _s(percent),
            }))

        if e.requested_price is not None:
            slip = (h.price_open - e.requested_price) / point
            if abs(slip) > tol.slippage_points:
                out.append(self.trade_divergence(Kind.SLIPPAGE, e, h.ticket, {
                    "requested_price": _s(e.requested_price),
                    "price_open": _s(h.price_open),
                    "difference_points": _plain(slip),
                }))

        # SL and TP are compared separately; both are reported in one divergence so its key
        # stays one per trade.
        wrong = [name for name, want, have in (("sl", e.sl, h.sl), ("tp", e.tp, h.tp))
                 if self.stop_differs(want, have, point)]
        if wrong:
            out.append(self.trade_divergence(Kind.SL_TP_MISMATCH, e, h.ticket, {
                "mismatched": ",".join(wrong),
                "expected_sl": _s(e.sl),
                "actual_sl": _s(h.sl),
                "expected_tp": _s(e.tp),
                "actual_tp": _s(h.tp),
            }))

    def stop_differs(self, want: Decimal | None, have: Decimal | None, point: Decimal) -> bool:
        if want is None or have is None:
            return want is not have  # one set and the other not
        return abs(have - want) > self.tol.stop_points * point

    def check_close(self, e: Expected, c: Closed, out: list[Divergence]) -> None:
        """A trade whose position closed at the broker. The bot's own close ("expert") is
        no divergence; any other reason is ``closed_externally``, and a stop-loss close
        beyond the stop by more than ``gap_points`` is also a ``gap``."""
        if c.reason == "expert":
            return
        out.append(self.trade_divergence(Kind.CLOSED_EXTERNALLY, e, c.ticket, {
            "reason": c.reason,
            "close_price": _s(c.close_price),
            "closed_at": c.closed_at.isoformat(),
        }))
        # The stop recorded at the close is the one that fired; the trade's own SL is the
        # fallback when the broker did not report it.
        sl = c.sl if c.sl is not None else e.sl
        if c.reason != "sl" or sl is None or c.close_price is None:
            return
        point = self.point(c.symbol)
        side = c.side or e.side
        # Points beyond the stop in the losing direction: a buy is stopped below its SL, a
        # sell above it.
        beyond = (sl - c.close_price) * Side(side).sign / point
        if beyond > self.tol.gap_points:
            out.append(self.trade_divergence(Kind.GAP, e, c.ticket, {
                "sl": _s(sl),
                "close_price": _s(c.close_price),
                "gap_points": _plain(beyond),
                "max_gap_points": _s(self.tol.gap_points),
            }))
