"""Safe file writes: a file is either the old one, the complete new one, or absent.

Data is written to a temporary file in the destination folder, flushed to disk, then renamed over
the destination. An error or Ctrl-C before the rename removes the temporary file; a temporary
file left by a process that was killed (SIGKILL, power loss) is removed by the next write to the
same destination. A destination that is a symbolic link is written through (its target is
replaced, the link stays); one that is not a regular file (``/dev/null``, a FIFO, a terminal) is
written to (in one piece, once complete), never replaced by a regular file.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from pathlib import Path

PART_SUFFIX = ".part"


@contextlib.contextmanager
def atomic_write(path):
    """Open ``path`` for binary writing so that it appears only when the block completes."""
    path = Path(os.path.realpath(path))  # through symbolic links: replace the target, keep the link
    if path.exists() and not path.is_file():
        if path.is_dir():
            raise IsADirectoryError(f"{path}: is a folder, not a file")
        buffer = io.BytesIO()  # a device or a FIFO: write to it, never replace it. Buffered, since
        yield buffer           # writers such as zip files seek and tell, which these cannot
        with open(path, "wb") as f:
            f.write(buffer.getbuffer())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=PART_SUFFIX)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_writable(path, what="output"):
    """Raise OSError (one line) now if ``path`` could not be written later; nothing is created."""
    path = Path(os.path.realpath(path))
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path}: is a folder, not a file")
    if path.exists() and not path.is_file():
        if not os.access(path, os.W_OK):
            raise PermissionError(f"{what} {path}: not writable")
        return
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if folder is None or not folder.is_dir():
        raise NotADirectoryError(f"{what} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: cannot write in {folder}")


def _remove_stale_parts(path):
    """Delete temporary files of earlier writes to ``path`` whose process is gone."""
    for part in path.parent.glob(f".{path.name}.*{PART_SUFFIX}"):
        pid = part.name[len(path.name) + 2:].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISREG(part.lstat().st_mode):
                part.unlink()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours (EPERM)
        return True
    return True


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
