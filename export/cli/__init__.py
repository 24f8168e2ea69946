"""``microseis`` subcommands of the export side (plug-ins, see :mod:`edge.cli`)."""
