"""Running fastnet's command-line tools the way a user does: a real process, default flags, its
output piped (``piped``) or on a pseudo-terminal (``in_terminal``), where progress bars draw."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from typing import NamedTuple

TIMEOUT = 600


class Done(NamedTuple):
    returncode: int
    stdout: str
    stderr: str  # in a terminal, stdout and stderr are one stream: both hold it


def piped(module, *args, env=None, cwd=None):
    """``python -m module args`` with stdin, stdout and stderr not a terminal."""
    done = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=env, cwd=cwd, timeout=TIMEOUT)
    return Done(done.returncode, done.stdout, done.stderr)


def in_terminal(module, *args, env=None, cwd=None):
    """``python -m module args`` on a pseudo-terminal (24 x 80), as typed at a shell prompt."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a new pty has 0 x 0
    proc = subprocess.Popen([sys.executable, "-m", module, *map(str, args)], stdin=slave, stdout=slave,
                            stderr=slave, env=dict(env or os.environ, TERM="xterm"), cwd=cwd,
                            start_new_session=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the process closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")
    return Done(returncode, text, text)


RUNNERS = {"piped": piped, "terminal": in_terminal}
