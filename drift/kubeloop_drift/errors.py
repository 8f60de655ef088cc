"""One error root for the drift check; each subclass carries the process exit code it maps to
(the table: EXIT_CODES_HELP, printed by ``kubeloop drift --help``)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_UNREADABLE = 3
EXIT_EMPTY = 4
EXIT_SCHEMA = 5
EXIT_OUTPUT = 6
EXIT_CODES_HELP = """exit codes:
  0  the check ran, drift or not (drift is a finding, not an error)
  2  usage or configuration error
  3  unreadable input (missing file, unknown format, parse error, access denied)
  4  empty input (no rows in the current window or in the reference)
  5  schema mismatch (a feature missing from the data, or of another kind)
  6  the report or result could not be written (the verdict was still printed)"""


class DriftError(Exception):
    """Root of every error the check reports as a one-line message and an exit code."""

    exit_code = 1


class UsageError(DriftError):
    """Bad command line or configuration."""

    exit_code = EXIT_USAGE


class UnreadableInputError(DriftError):
    """A data file or profile that cannot be listed, opened or parsed."""

    exit_code = EXIT_UNREADABLE


class EmptyInputError(DriftError):
    """No rows to compare (empty window or empty reference)."""

    exit_code = EXIT_EMPTY


class SchemaMismatchError(DriftError):
    """A feature is missing, or its type differs between reference and current data."""

    exit_code = EXIT_SCHEMA


class OutputError(DriftError):
    """The report or result could not be written."""

    exit_code = EXIT_OUTPUT
