"""What the bench reads off the processes it measures: CPU time, and peak memory."""

from __future__ import annotations

import contextlib
import threading

import psutil

RSS_INTERVAL = 0.25


class PeakRss(threading.Thread):
    """Samples a process tree's resident memory (the process and all its children)."""

    def __init__(self, pid: int, interval: float = RSS_INTERVAL) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def sample(self) -> int:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def run(self) -> None:
        while True:
            self.peak = max(self.peak, self.sample())
            self.samples += 1
            if self._stop_event.wait(self.interval):
                return

    def finish(self) -> int:
        self._stop_event.set()
        self.join(timeout=5)
        self.peak = max(self.peak, self.sample())
        return self.peak


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (0 once it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)
