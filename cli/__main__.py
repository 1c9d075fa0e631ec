"""``python -m cli ...`` is the ``flywheel`` command (what the demo uses to start the gateway process)."""

from cli.main import main

main()
