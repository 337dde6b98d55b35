"""`python -m valueguard.cli`."""

from valueguard.cli import main

main()
