"""The command line: everything that knows click, flags, config files and exit codes.

- ``entry``: the process entry point (``mpswarm``, ``python -m mpswarm``); gevent patches first.
- ``main``: ``mpswarm [OPTIONS]``, the run command, and the dispatch to the subcommands.
- ``options``: every option of a run, declared once; the click options derive from it.
- ``config_files``: option values from Locust's and mpswarm's configuration files.
- ``custom_args``: the options a locustfile adds (``init_command_line_parser``).
- ``serve``, ``compare``, ``load``: ``mpswarm serve``, ``mpswarm compare``, and ``mpswarm
  replay`` / ``mpswarm capacity`` (runs with a few options of their own).

The library below never imports this package: an entry point builds a ``RunConfig`` and hands
it over. Nothing is imported here, so that ``entry`` can patch before anything else loads.
"""
