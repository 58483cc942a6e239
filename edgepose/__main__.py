"""`python -m edgepose` (and `torchrun -m edgepose train ...`)."""

from edgepose.cli import main

main()
