"""carmatch's command-line tools: ``python -m admin <command>``."""
