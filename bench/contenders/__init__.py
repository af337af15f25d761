"""One runnable module per contender: ``python -m bench.contenders.<name> --scenario ...``.

Each runs until SIGTERM in its own process (and for the peers, in its own virtualenv),
so only the standard library may be imported at package level.
"""
