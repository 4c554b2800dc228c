"""The one error path of every command-line entry point.

Expected failures (a missing or corrupt file, a wrong config key, a bad size, a wrong
checkpoint) raise :class:`UserError` with a message that names the file or key and what was
expected. :func:`run_cli` turns it into one line on stderr and exit status 2; anything else is a
genuine bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence


class UserError(Exception):
    """An expected failure caused by the user's input; the message is shown as-is (one line)."""


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; map :class:`UserError` to ``error: <msg>`` on stderr and exit code 2.

    Returns the exit status (0 on success, or what ``main`` returned).
    """
    try:
        status = main(argv)
    except UserError as exc:
        message = " ".join(str(exc).split())  # always one line
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(status or 0)
