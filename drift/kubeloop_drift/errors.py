"""One error root for the drift check; each subclass carries the process exit code it maps to.

Exit codes of ``kubeloop drift``:

====  ==========================================================================
0     the check ran (whether or not drift was found: drift is a finding)
2     usage or configuration error (bad flags, bad ``--config``, test/kind mismatch)
3     unreadable input (missing file, unknown format, parse error, access denied)
4     empty input (no rows in the current window, or an empty reference)
5     schema mismatch (a feature missing from the data, or of another type)
6     the check ran but its report could not be written (the verdict was printed)
====  ==========================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_UNREADABLE = 3
EXIT_EMPTY = 4
EXIT_SCHEMA = 5
EXIT_OUTPUT = 6


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
