"""`python -m seqforge.cli`: the `seqforge` command."""

from seqforge.cli import main

main()
