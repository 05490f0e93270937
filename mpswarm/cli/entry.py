"""The process entry point: monkey-patch first, then import and run the CLI.

gevent must patch the standard library before anything imports ``ssl`` or ``socket`` users
(urllib3, the locustfile's own imports), so this module imports nothing else first. It is the
only place mpswarm patches.
"""

from __future__ import annotations


def main() -> None:
    """Run ``mpswarm`` and exit with its code."""
    from gevent import monkey

    monkey.patch_all()
    import sys

    from mpswarm.cli.main import main as cli_main

    sys.exit(cli_main())
