"""``python -m mpswarm``: same as the ``mpswarm`` command."""

from mpswarm.cli.entry import main

if __name__ == "__main__":
    main()
