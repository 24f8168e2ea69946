"""`microseis` subcommands of the workstation side (plug-ins registered through entry points)."""
