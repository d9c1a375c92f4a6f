"""``python -m superscript.cli``: the ``superscript`` command."""

from superscript.cli.commands import main

main()
