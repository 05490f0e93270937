"""``python -m mpswarm``: same as the ``mpswarm`` command."""

from mpswarm._entry import main

if __name__ == "__main__":
    main()
