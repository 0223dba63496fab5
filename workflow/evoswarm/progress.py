"""Progress lines with an ETA for the long stages (pretraining, LoRA training, the debate, evaluation): one line
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


class TargetsProgress:
    """The evaluation job's progress log: a line as each target starts and ends and as model calls finish,
    with the elapsed time and an ETA for the whole job, from the work done so far (in estimated backend
    requests per target, `work`) at the pace so far."""

    def __init__(self, work: dict[str, int], log=print):
        self.work, self.log = work, log
        self.done: dict[str, int] = {}
        self.current: str | None = None
        self.t0 = time.monotonic()

    def start(self, target: str) -> None:
        self.current = target
        self.log(f"[{self._clock()}] {target}: started ({self.work.get(target, 0)} backend requests){self._eta()}")

    def advance(self, calls: int) -> None:
        t = self.current
        self.done[t] = min(self.work.get(t, 0), self.done.get(t, 0) + calls)
        self.log(f"[{self._clock()}] {t}: {self.done[t]}/{self.work.get(t, 0)} backend requests{self._eta()}")

    def finish(self, target: str, note: str = "") -> None:
        self.done[target] = self.work.get(target, 0)
        self.log(f"[{self._clock()}] {target}: done{', ' + note if note else ''}{self._eta()}")

    def _clock(self) -> str:
        return clock(time.monotonic() - self.t0)

    def _eta(self) -> str:
        total, done = sum(self.work.values()), sum(self.done.values())
        if not done or total <= done:
            return ""
        return f"; ETA {clock((time.monotonic() - self.t0) / done * (total - done))}"
