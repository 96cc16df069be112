"""What a run prints: the ``dhs`` logger, one line per stage step, progress lines during long Spark work.

* :func:`configure_logging` attaches one handler to the ``dhs`` logger (standard :mod:`logging`), writing
  ``yy/mm/dd HH:MM:SS INFO dhs: ...`` lines — the layout of Spark's own log lines — to standard output.
* A stage driver makes one :class:`StageSteps` and calls :meth:`StageSteps.done` after each step:
  ``stage 4c: inject + write stamps: rows=5000 (118.2 s)`` (elapsed time since the previous step).
  :meth:`StageSteps.count_rows` gives an accumulator that executors add processed rows to.
* :class:`ProgressMonitor` is a driver thread that, while Spark tasks run, logs
  ``stage 4c: in progress: rows 3000/10000 (30 %), tasks 12/40, 95 s`` every ``progress_seconds``.

The interval and levels come from the run config's ``logging`` section (:class:`dhs.config.LoggingSettings`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

LOGGER_NAME = "dhs"
log = logging.getLogger(LOGGER_NAME)

LINE_FORMAT = "%(asctime)s %(levelname)s dhs: %(message)s"
DATE_FORMAT = "%y/%m/%d %H:%M:%S"


class _StdoutHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stdout`` is when a record is emitted."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:  # the stream is always the current sys.stdout
        pass


def configure_logging(level: str = "INFO") -> logging.Logger:
    """Give the ``dhs`` logger its handler (once) and set its level; returns the logger."""
    if not any(isinstance(h, _StdoutHandler) for h in log.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter(LINE_FORMAT, DATE_FORMAT))
        log.addHandler(handler)
    log.setLevel(level.upper())
    return log


def ensure_logging() -> None:
    """Library use without :func:`configure_logging` (tests, notebooks) still shows INFO lines."""
    if log.level == logging.NOTSET and not log.handlers:
        configure_logging("INFO")


def _format_counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items())


_current: StageSteps | None = None
_current_lock = threading.Lock()


def current_stage() -> StageSteps | None:
    """The stage whose steps are being logged (the one progress lines are about), if any."""
    with _current_lock:
        return _current


class StageSteps:
    """Step lines of one stage run, each with counts and the seconds since the previous step."""

    def __init__(self, stage: str, spark: Any = None) -> None:
        global _current
        ensure_logging()
        self.stage = stage
        self.spark = spark
        self.started = self.last = time.monotonic()
        self.rows_total: int | None = None
        self.rows_done: Any = None
        with _current_lock:
            _current = self

    def done(self, step: str, **counts: Any) -> float:
        """Log ``stage <s>: <step>: k=v, ... (<seconds> s)``; returns the step's seconds. A row count from
        :meth:`count_rows` belongs to this step and no longer shows in progress lines."""
        now = time.monotonic()
        self.rows_total = self.rows_done = None
        seconds = now - self.last
        self.last = now
        text = _format_counts(counts)
        log.info("stage %s: %s%s (%.1f s)", self.stage, step, f": {text}" if text else "", seconds)
        return seconds

    def count_rows(self, total: int) -> Any:
        """An accumulator for executors to add processed rows to (``acc.add(n)``); progress lines then show
        rows done / ``total``. None without a Spark session."""
        self.rows_total = int(total)
        self.rows_done = None if self.spark is None else self.spark.sparkContext.accumulator(0)
        return self.rows_done

    def progress(self, tasks_done: int, tasks_total: int) -> str:
        """The progress line for the given task counts (rows from :meth:`count_rows` when set)."""
        parts = []
        if self.rows_done is not None and self.rows_total:
            done = min(int(self.rows_done.value), self.rows_total)
            parts.append(f"rows {done}/{self.rows_total} ({100.0 * done / self.rows_total:.0f} %)")
        parts.append(f"tasks {tasks_done}/{tasks_total}")
        return f"stage {self.stage}: in progress: {', '.join(parts)}, {time.monotonic() - self.started:.0f} s"


def running_tasks(spark: Any) -> tuple[int, int] | None:
    """(completed, total) tasks over Spark's active stages, or None when no Spark stage is running."""
    tracker = spark.sparkContext.statusTracker()
    infos = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
    infos = [i for i in infos if i is not None]
    if not infos:
        return None
    return sum(i.numCompletedTasks for i in infos), sum(i.numTasks for i in infos)


class ProgressMonitor:
    """Driver thread: every ``interval`` seconds while Spark tasks run, log the current stage's progress."""

    def __init__(self, spark: Any, interval: float = 30.0) -> None:
        self.spark = spark
        self.interval = float(interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dhs-progress", daemon=True)

    def line(self) -> str | None:
        """The progress line now, or None when no Spark stage runs."""
        tasks = running_tasks(self.spark)
        if tasks is None:
            return None
        steps = current_stage()
        if steps is None:
            return f"spark: in progress: tasks {tasks[0]}/{tasks[1]}"
        return steps.progress(*tasks)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                text = self.line()
            except Exception as exc:  # noqa: BLE001 - progress must never break a run (e.g. context stopped)
                log.debug("progress monitor: %s", exc)
                continue
            if text:
                log.info(text)

    def __enter__(self) -> ProgressMonitor:
        ensure_logging()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
