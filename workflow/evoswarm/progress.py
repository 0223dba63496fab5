"""Progress lines with an ETA for the long stages (pretraining, LoRA training, the debate): one line
every so often in the rule's log, so a running job shows how far it got and when it will end."""

from __future__ import annotations

import math
import time


def clock(seconds: float) -> str:
    """'42s', '3m07s' or '1h02m'."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Counts `total` units of work from now; `line(done)` says how far, the time spent and the ETA
    (the time left at the mean pace so far)."""

    def __init__(self, what: str, total: int, unit: str = ""):
        self.what, self.total, self.unit = what, total, unit
        self.t0 = time.monotonic()

    def restart(self) -> None:
        self.t0 = time.monotonic()

    def line(self, done: int, detail: str = "") -> str:
        spent = time.monotonic() - self.t0
        eta = clock(spent / done * (self.total - done)) if done else "?"
        pct = math.floor(100 * done / self.total) if self.total else 100
        unit = f" {self.unit}" if self.unit else ""
        detail = f", {detail}" if detail else ""
        return f"{self.what} {done}/{self.total}{unit} ({pct}%){detail}; {clock(spent)} spent, ETA {eta}"
