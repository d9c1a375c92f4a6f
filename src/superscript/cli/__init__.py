"""The ``superscript`` command and its client tools, one module per job.

- ``commands``: the Typer app (``app``) and ``--version``; ``main`` is the console script.
- ``options``: each shared option declared once, the settings they make, the consoles.
- ``services``: ``up``, ``dev-server``, ``worker``, ``api``.
- ``exits``: exit codes, SIGTERM, and the ``os._exit`` every process leaves by.
- ``http``: the one client of the HTTP API (``batch`` and ``demo`` use it).
- ``csv_file``: a CSV file read into a batch's items, every bad line reported (the row
  readers are ``superscript.batches.csv_rows``, shared with the API).
- ``progress``: a batch's progress bar and tables.
- ``batch``: ``batch submit`` and ``batch status``.
- ``demo``: ``superscript demo``, its four stories and the stack it may start.
"""

from superscript.cli.commands import app, main

__all__ = ["app", "main"]
