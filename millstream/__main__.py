"""``python -m millstream``: the same as the ``millstream`` command."""

from millstream.cli import main

main()
