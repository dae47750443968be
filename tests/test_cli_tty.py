"""`quant convert` in a terminal: the Rich progress display renders and ends cleanly.

The command runs on a pseudo-terminal (``pty.fork``: the child is a session leader whose
controlling terminal is the pty, as in a real shell), so Rich sees a TTY, and Ctrl-C is a
real ^C typed into the terminal.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import time

import pytest

from tests.cli_support import DEMO, assert_clean, base_env, leftovers, quant_exe

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A command on a pty (120 x 40), with its output collected."""

    def __init__(self, argv, env, cwd=None, cols=120, rows=40):
        pid, fd = pty.fork()
        if pid == 0:  # child
            try:
                if cwd:
                    os.chdir(cwd)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.out = b""
        self.status = None

    def read_until(self, ready, timeout: float = 120) -> bool:
        """Read output until ready(output) is true (False if the command ended first)."""
        deadline = time.monotonic() + timeout
        while not ready(self.out):
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.05)) and os.waitpid(self.pid, os.WNOHANG)[0]:
                return ready(self.out)
        return True

    def _read(self, timeout: float) -> bool:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.out += data
        return bool(data)

    def type(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.2)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self._read(0.1):
                    pass
                os.close(self.fd)
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"timed out; output so far: {self.out[-2000:]!r}")

    def text(self) -> str:
        return ANSI.sub(b"", self.out).decode("utf-8", "replace")


def tty_env():
    env = base_env(TERM="xterm-256color")
    for k in ("NO_COLOR", "CI", "GITHUB_ACTIONS", "TERM_PROGRAM", "COLUMNS", "LINES", "FORCE_COLOR"):
        env.pop(k, None)
    return env


def test_progress_renders_and_ends_cleanly(tmp_path):
    out = tmp_path / "out"
    t = Terminal([quant_exe(), "convert", str(DEMO), "Q4_K_M", "Q8_0", "-o", f"{out}/"], tty_env())
    rc = t.wait()
    raw, text = t.out, t.text()
    assert rc == 0, text
    # Rich drew a live bar: cursor hidden, lines redrawn in place, colours, the bar glyphs
    assert b"\x1b[?25l" in raw and b"\x1b[2K" in raw and b"\x1b[32m" in raw
    assert "\u2501" in text  # the bar
    # per tensor and totals, with speed and ETA columns
    assert "writing Tiny-Llama-Demo-1.7M-Q4_K_M.gguf, Tiny-Llama-Demo-1.7M-Q8_0.gguf" in text
    assert "[21/21] output_norm.weight" in text
    assert re.search(r"\[\d+/21\] blk\.\d\.\w+\.weight", text)
    assert "6.8/6.8 MB" in text and "MB/s" in text and re.search(r"\d:\d\d:\d\d", text)
    # ...and it ended cleanly: cursor shown again after the last redraw, then the final lines
    assert raw.rindex(b"\x1b[?25h") > raw.rindex(b"\x1b[?25l")
    tail = text[text.rindex("[21/21]"):].splitlines()
    assert tail[-3].startswith(f"wrote {out}/Tiny-Llama-Demo-1.7M-Q4_K_M.gguf (1.1 MB)"), tail
    assert tail[-2].startswith(f"wrote {out}/Tiny-Llama-Demo-1.7M-Q8_0.gguf (1.8 MB)"), tail
    assert re.fullmatch(r"done in \d+\.\ds", tail[-1].strip()), tail
    assert sorted(p.name for p in out.iterdir()) == ["Tiny-Llama-Demo-1.7M-Q4_K_M.gguf", "Tiny-Llama-Demo-1.7M-Q8_0.gguf"]


def test_error_on_a_terminal(tmp_path):
    (tmp_path / "model").mkdir()
    t = Terminal([quant_exe(), "convert", str(tmp_path / "model"), "Q8_0"], tty_env(), cwd=str(tmp_path))
    rc = t.wait()
    assert rc == 3
    assert b"\x1b[1;31merror:" in t.out  # bold red
    assert f"error: {tmp_path / 'model'}: no config.json" in t.text()
    assert "Traceback" not in t.text()


def test_batch_error_with_brackets_on_a_terminal(tmp_path):
    """Messages are printed as text, not as Rich markup: "[[model]]" survives."""
    (tmp_path / "m.toml").write_text('output = "d"\n')
    t = Terminal([quant_exe(), "batch", str(tmp_path / "m.toml")], tty_env())
    assert t.wait() == 3
    assert "no models; add one or more [[model]] tables with a source" in t.text()
    assert b"\x1b[1;31merror:" in t.out


def test_ctrl_c_on_a_terminal(tmp_path):
    """^C typed while the bar is running: the display stops, the cursor comes back, the
    temporary files go, exit code 130."""
    from fixtures.registry import ensure_fixture

    src = ensure_fixture("llama-gqa")
    out = tmp_path / "out"
    out.mkdir()
    recipes = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q8_0", "Q4_0", "Q5_1"]
    t = Terminal([quant_exe(), "convert", str(src), *recipes, "-o", f"{out}/"], tty_env())
    # as soon as the bar runs and the outputs are open
    started = t.read_until(lambda o: b"[1/22]" in o and len(leftovers(out)) == len(recipes))
    t.type(b"\x03")
    rc = t.wait()
    if not started or b"done in" in t.out:
        pytest.fail(f"the conversion ended before ^C: {t.text()[-1000:]}")
    assert rc == 130, t.text()[-2000:]
    text = t.text()
    assert "error: interrupted; no output file was left behind" in text
    assert "Traceback" not in text
    assert t.out.rindex(b"\x1b[?25h") > t.out.rindex(b"\x1b[?25l")
    assert_clean(out)
