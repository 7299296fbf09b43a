"""Shared bits of the command-line tools: logging set-up and error reporting."""
from __future__ import annotations

import logging
import sys

from ..core.errors import NovicError


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format='%(levelname)s %(name)s: %(message)s'
    )
    # open_clip logs every step of model creation at INFO; keep it for --verbose only.
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)


def fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def run(main_fn, argv=None) -> int:
    """Call main_fn(argv); turn our own errors into one line on stderr and exit code 1."""
    try:
        return main_fn(argv) or 0
    except (NovicError, FileNotFoundError, ValueError) as e:
        return fail(str(e))
    except KeyboardInterrupt:
        return 130
