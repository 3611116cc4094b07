"""A dependency-free progress bar for long commands (stderr; plain lines off a TTY)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total, self.label = max(total, 1), label
        self.stream = stream or sys.stderr
        self.done = 0
        self.note = ""
        self._tty = self.stream.isatty()
        self._start = time.monotonic()
        self._last_line = -1.0

    def advance(self, note: str = "") -> None:
        self.done += 1
        self.note = note
        self._draw()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self._start
        if self._tty:
            filled = int(30 * self.done / self.total)
            bar = "#" * filled + "-" * (30 - filled)
            line = f"\r{self.label} [{bar}] {self.done}/{self.total} {elapsed:5.0f}s {self.note}"
            self.stream.write(line[:120].ljust(120))
            self.stream.flush()
        elif self.done == self.total or elapsed - self._last_line >= 10:
            self._last_line = elapsed
            self.stream.write(
                f"{self.label}: {self.done}/{self.total} after {elapsed:.0f}s {self.note}\n"
            )
            self.stream.flush()

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
