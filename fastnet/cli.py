"""What the command-line tools share: the name they were started by."""

from __future__ import annotations

import os
import sys


def prog_name(module):
    """How the user started ``module``'s tool, for --help and usage lines: ``fastnet-predict`` when
    run as the installed console script, else ``python -m fastnet.predict``."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script if script.startswith("fastnet-") else f"python -m {module}"
