"""What the user sees while a conversion runs, and how it ends.

On a terminal: a Rich progress bar over the bytes of weights processed, with the current
tensor, speed and ETA.  Elsewhere (CI logs, pipes): one plain line per tensor.  Errors are
reported as one message (no traceback) with the documented exit code (`errors.py`);
Ctrl-C and SIGTERM end with 130 / 143 after the writer has removed its temporary files.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from pathlib import Path

from .errors import QuantError


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup runs."""


class Reporter:
    _written: list[Path] = []
    _seconds: float = 0.0

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._progress = None
        self._task = None
        self._total = 0
        self._done_bytes = 0
        self._count = 0
        self._n = 0
        self._t0 = time.perf_counter()

    # -- lifecycle -------------------------------------------------------------------------
    @contextlib.contextmanager
    def guard(self):
        def on_term(signum, frame):
            raise Terminated()

        old_term = signal.signal(signal.SIGTERM, on_term)
        if hasattr(signal, "SIGXFSZ"):  # a file-size limit must surface as EFBIG, not kill us
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:
            yield self
        except QuantError as e:
            self._stop()
            self._print_error(str(e))
            raise SystemExit(e.exit_code) from None
        except KeyboardInterrupt:
            self._stop()
            self._print_error("interrupted; no output file was left behind")
            raise SystemExit(130) from None
        except Terminated:
            self._stop()
            self._print_error("terminated; no output file was left behind")
            raise SystemExit(143) from None
        finally:
            self._stop()
            signal.signal(signal.SIGTERM, old_term)

    def _print_error(self, msg: str) -> None:
        if self.tty:
            from rich.console import Console
            from rich.markup import escape

            Console(stderr=True).print(f"[bold red]error:[/] {escape(msg)}", highlight=False)
        else:
            print(f"error: {msg}", file=self.stream, flush=True)

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -- progress (called by the pipeline) -------------------------------------------------
    def start(self, sizes: dict[str, int], outputs: list[Path]) -> None:
        self._sizes = sizes
        self._n = len(sizes)
        self._total = sum(sizes.values())
        self._t0 = time.perf_counter()
        if self.quiet:
            return
        names = ", ".join(p.name for p in outputs)
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}", justify="left"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._progress.start()
            self._progress.console.print(f"writing {names}")
            self._tensor_task = self._progress.add_task("", total=1)
            self._task = self._progress.add_task("total", total=self._total)
        else:
            print(f"writing {names}: {self._n} tensors, {self._total / 1e6:,.1f} MB of weights", file=self.stream, flush=True)

    def tensor(self, name: str) -> None:
        """A tensor begins."""
        self._end_tensor()
        self._current = name
        self._count += 1
        if self._progress is not None:
            self._progress.reset(self._tensor_task, total=max(1, self._sizes.get(name, 1)),
                                 description=f"[{self._count}/{self._n}] {name}")

    def advance(self, nbytes: int) -> None:
        self._done_bytes += nbytes
        if self._progress is not None:
            self._progress.update(self._tensor_task, advance=nbytes)
            self._progress.update(self._task, advance=nbytes)

    def _end_tensor(self) -> None:
        """Plain mode: one line per finished tensor."""
        name = getattr(self, "_current", None)
        if name is None or self.quiet or self._progress is not None or self.tty:
            return
        el = time.perf_counter() - self._t0
        print(f"[{self._count:>4}/{self._n}] {name:<40} {self._done_bytes / 1e6:>10,.1f} MB  {el:6.1f}s",
              file=self.stream, flush=True)
        self._current = None

    def done(self, written: list[Path]) -> None:
        self._end_tensor()
        self._stop()
        self._written = list(written)
        self._seconds = time.perf_counter() - self._t0
        if self.quiet:
            return
        el = self._seconds
        for p in written:
            size = p.stat().st_size
            print(f"wrote {p} ({size / 1e6:,.1f} MB)", file=self.stream, flush=True)
        print(f"done in {el:.1f}s", file=self.stream, flush=True)

    def report(self) -> dict:
        """The --json report of a finished run: every file with its size, bits per weight
        and the type of each tensor."""
        from .inspect import summarize

        files = [p for p in self._written if "-of-" not in p.name or "-00001-of-" in p.name]
        return {
            "seconds": round(self._seconds, 3),
            "outputs": [summarize(p, with_metadata=False) for p in files],
        }
