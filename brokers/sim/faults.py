"""Injectable faults of the simulated terminal (for tests and the demo).

Kinds that hit any call: ``none`` (None, RES_E_INTERNAL_FAIL), ``timeout`` (sleep ``delay``,
then None, RES_E_INTERNAL_FAIL_TIMEOUT), ``disconnect`` (None, RES_E_INTERNAL_FAIL_CONNECT),
``delay`` (sleep ``delay``, then answer normally).
Kinds that hit ``order_send`` only: ``requote``, ``reject``, ``partial_fill`` (fill
``volume * fraction`` rounded down to the step), ``slippage`` (fill ``points`` worse) and
``lost_reply`` (the order IS executed, then the reply is lost: None,
RES_E_INTERNAL_FAIL_TIMEOUT; the ambiguous case a caller must resolve by looking the
position up).

A fault matches a call when its ``method`` is None or the method's name, and its ``login``
is None or the account the call acts for. Faults are consumed in the order they were
injected; each affects ``count`` matching calls.
"""

from __future__ import annotations

from dataclasses import dataclass

CALL_KINDS = frozenset({"none", "timeout", "disconnect", "delay"})
ORDER_KINDS = frozenset({"requote", "reject", "partial_fill", "slippage", "lost_reply"})
KINDS = CALL_KINDS | ORDER_KINDS


@dataclass(slots=True)
class Fault:
    kind: str
    method: str | None = None
    count: int = 1
    login: int | None = None
    delay: float = 0.0  # seconds
    points: int = 0  # slippage, in points (0.00001)
    fraction: float = 0.5  # partial fill share of the requested volume

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(KINDS)}")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError("fraction must be within 0..1")

    def matches(self, method: str, login: int | None, stage: str) -> bool:
        """``stage`` is "call" (method entry) or "order" (order_send execution)."""
        kinds = CALL_KINDS if stage == "call" else ORDER_KINDS
        return (self.kind in kinds and self.method in (None, method)
                and self.login in (None, login))


class FaultQueue:
    """Pending faults, oldest first."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def __len__(self) -> int:
        return len(self._faults)

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str, login: int | None, stage: str) -> Fault | None:
        """The first matching fault, with one use consumed; None when nothing matches."""
        for fault in self._faults:
            if fault.matches(method, login, stage):
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return fault
        return None
