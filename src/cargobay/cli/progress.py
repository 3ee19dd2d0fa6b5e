"""A progress bar with an ETA on a terminal's stderr; silent when stderr is not a terminal."""

import sys
import time
from typing import TextIO

WIDTH = 30


class ProgressBar:
    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._phase = ""
        self._phase_started = time.monotonic()
        self._last_draw = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self._enabled or total <= 0:
            return
        now = time.monotonic()
        if phase != self._phase:
            if self._phase:
                self._stream.write("\n")
            self._phase, self._phase_started = phase, now
        if done < total and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        filled = WIDTH * done // total
        elapsed = now - self._phase_started
        remaining = elapsed / done * (total - done) if done else 0.0
        self._stream.write(
            f"\r{phase:>8} [{'=' * filled}{' ' * (WIDTH - filled)}] {done}/{total}"
            f" {100 * done // total:3d}% ETA {_clock(remaining)} "
        )
        if done == total:
            self._stream.write("\n")
            self._phase = ""
        self._stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
