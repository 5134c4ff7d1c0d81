"""``python -m automations``."""

from automations.cli import main

main()
