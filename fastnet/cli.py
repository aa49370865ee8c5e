"""What the command-line tools share: the name they were started by, and where their output goes."""

from __future__ import annotations

import os
import sys


def prog_name(module):
    """How the user started ``module``'s tool, for --help and usage lines: ``fastnet-predict`` when
    run as the installed console script, else ``python -m fastnet.predict``."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script if script.startswith("fastnet-") else f"python -m {module}"


def write_output(out, text, n_rows):
    """The predictions' CSV text to the file ``out`` (atomically), or to stdout when it is None."""
    if out:
        from fastnet.files import atomic_write

        with atomic_write(out) as f:
            f.write(text.encode())
        print(f"wrote {n_rows:,} predictions to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
