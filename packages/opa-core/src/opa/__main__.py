"""``python -m opa``: the ``opa`` command, for environments whose scripts folder is not on PATH."""

from opa._cli import main

main()
