"""``python -m agent.server --port 8080``: the REST service (same as ``evolvent serve``)."""

from agent.server.cli import main

main()
