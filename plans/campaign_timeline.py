"""When each instrument was busy during a campaign, in instrument (virtual) time.

Every campaign step appends the intervals it kept instruments busy to
``<out>/campaign-timeline.ndjson`` (one JSON object a line: instrument, step, start and end
in s of the lab's clock), so a resumed campaign reports over the whole campaign. The
makespan is the first start to the last end; an instrument's utilisation is the time it was
busy (overlapping intervals counted once) over the makespan.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

TIMELINE = "campaign-timeline.ndjson"
"""File name of the timeline in a campaign's output folder (JSON Lines, but not ``*.jsonl``:
that is a run's file)."""


@dataclass(frozen=True)
class Busy:
    """One instrument busy from ``start_s`` to ``end_s`` (instrument clock, s) for a step."""

    instrument: str
    step: str
    start_s: float
    end_s: float


class Timeline:
    """The busy intervals of a campaign, kept in a JSON Lines file as they are added."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / TIMELINE
        self.intervals: list[Busy] = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    self.intervals.append(Busy(**json.loads(line)))
                except (json.JSONDecodeError, TypeError):
                    continue  # a torn last line (the process was killed mid-write)

    def add(self, instrument: str, step: str, start_s: float, end_s: float) -> None:
        """Record one interval (appended to the file at once)."""
        busy = Busy(instrument, step, float(start_s), float(max(end_s, start_s)))
        self.intervals.append(busy)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(asdict(busy)) + "\n")

    def makespan_s(self) -> float:
        """Return the first start to the last end, s (0 without intervals)."""
        if not self.intervals:
            return 0.0
        return max(b.end_s for b in self.intervals) - min(b.start_s for b in self.intervals)

    def busy_s(self, instrument: str) -> float:
        """Return the time ``instrument`` was busy, s (overlaps counted once)."""
        spans = sorted((b.start_s, b.end_s) for b in self.intervals if b.instrument == instrument)
        total, end = 0.0, -float("inf")
        for lo, hi in spans:
            if hi <= end:
                continue
            total += hi - max(lo, end)
            end = hi
        return total

    def utilisation(self) -> dict[str, float]:
        """Return instrument -> busy time / makespan (0..1), in first-use order."""
        span = self.makespan_s()
        names = list(dict.fromkeys(b.instrument for b in self.intervals))
        return {n: (self.busy_s(n) / span if span > 0 else 0.0) for n in names}


__all__ = ["TIMELINE", "Busy", "Timeline"]
