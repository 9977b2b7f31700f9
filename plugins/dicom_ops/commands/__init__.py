"""Subcommands of `dicom-ops`: every module here with a `register(subparsers)` is a command."""
