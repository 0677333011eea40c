"""Subcommands of the `bridgescale` console script, one module each.

Each module has `register(subparsers)`, which adds its parser and sets `handler`, a function of
the parsed arguments returning the process exit code.
"""
