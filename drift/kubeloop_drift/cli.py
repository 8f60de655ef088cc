"""``kubeloop drift``: ``check`` a current window against a reference, or ``profile`` a reference.

Exit codes: kubeloop_drift.errors. Errors are one line on stderr; progress lines (per stage, with
timings) go to stderr too, the verdict table to stdout. The operator builds the command line with
kubeloop.contracts.drift_check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, NoReturn

import yaml
from pydantic import ValidationError

from kubeloop.api.drift import DriftCheckConfig
from kubeloop.api.summaries import TERMINATION_MESSAGE_PATH, write_termination_message
from kubeloop.contracts.drift_check import DEFAULT_WINDOW
from kubeloop_drift.check import CurrentData, obtain_profile, run_check
from kubeloop_drift.errors import EXIT_CODES_HELP, DriftError, OutputError, UsageError
from kubeloop_drift.outputs import report_location, write_outputs
from kubeloop_drift.profile import summary_line
from kubeloop_drift.progress import Progress
from kubeloop_drift.report_html import render_report


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() returns the code."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kubeloop drift",
        description="Data drift checks against a reference dataset.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = commands.add_parser(
        "check",
        help="check a current window against the reference",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "--reference", required=True, metavar="URI", help="reference data: Parquet/CSV file or folder"
    )
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--current", metavar="URI", help="current data: Parquet/CSV file or folder")
    source.add_argument("--payload-log", metavar="SINK_URI", help="payload log sink of the inference server")
    check.add_argument("--model", help="model name in the payload log (with --payload-log)")
    window = check.add_mutually_exclusive_group()
    window.add_argument(
        "--window-duration", metavar="DURATION", help=f"e.g. 30m, 24h, 7d (default {DEFAULT_WINDOW})"
    )
    window.add_argument("--last-rows", type=int, metavar="N", help="the newest N rows of the payload log")
    check.add_argument(
        "--config", metavar="JSON_OR_@FILE", help="DriftCheckConfig: tests, driftShare, features"
    )
    check.add_argument("--output-dir", metavar="DIR", help="write result.json and report.html here")
    check.add_argument("--report-uri", metavar="URI", help="also write them under this URI (s3://, file://)")
    check.add_argument(
        "--termination-log",
        default=TERMINATION_MESSAGE_PATH,
        metavar="PATH",
        help="where the compact summary goes (best effort)",
    )
    _common_options(check)
    profile = commands.add_parser("profile", help="compute and store the reference profile")
    profile.add_argument("--reference", required=True, metavar="URI")
    _common_options(profile)
    return parser


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile-cache",
        metavar="URI",
        help="profile file (.npz) or folder; default: <reference>.kubeloop-profile.npz",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="features checked in parallel (default: CPU count, at most 4)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines")


def parse_config(text: str | None) -> DriftCheckConfig:
    """--config as JSON, or @path to a JSON or YAML file; camelCase or snake_case keys."""
    if text is None:
        return DriftCheckConfig()
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as handle:
                text = handle.read()
        except OSError as error:
            raise UsageError(f"cannot read config file {text[1:]}: {error.strerror or error}") from error
    try:
        data: Any = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as error:
        raise UsageError(f"config is neither JSON nor YAML: {' '.join(str(error).split())}") from error
    try:
        return DriftCheckConfig.model_validate(data or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise UsageError(f"bad config: {where}: {first['msg']}") from error


def run_check_command(args: argparse.Namespace) -> int:
    if args.payload_log is None and (args.model or args.window_duration or args.last_rows is not None):
        raise UsageError("--model, --window-duration and --last-rows go with --payload-log")
    if args.payload_log is not None and not args.model:
        raise UsageError("--payload-log needs --model")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    config = parse_config(args.config)
    progress = Progress(quiet=args.quiet)
    current = CurrentData(
        uri=args.current,
        payload_log=args.payload_log,
        model=args.model,
        window_duration=args.window_duration
        or (DEFAULT_WINDOW if args.payload_log and args.last_rows is None else None),
        last_rows=args.last_rows,
    )
    result = run_check(
        args.reference, current, config, progress, profile_cache=args.profile_cache, workers=args.workers
    )
    destinations = [d for d in (args.output_dir, args.report_uri) if d]
    result.report_uri = report_location(args.output_dir, args.report_uri)
    print("\n".join(result.verdict_lines()), flush=True)
    try:
        if destinations:
            with progress.stage("wrote report") as details:
                html = render_report(result)
                result.timings_seconds = dict(progress.timings)
                details.extend(write_outputs(result.to_json(), html, destinations))
        else:
            progress.note("no --output-dir or --report-uri: result.json and report.html not written")
    except DriftError:
        result.report_uri = None
        write_termination_message(result.summary(), args.termination_log)
        raise
    write_termination_message(result.summary(), args.termination_log)
    progress.note(f"done in {progress.total_seconds():.2f}s")
    return 0


def run_profile_command(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    progress = Progress(quiet=args.quiet)
    outcome = obtain_profile(args.reference, args.profile_cache, progress, rebuild=True, workers=args.workers)
    if not outcome.stored:
        raise OutputError(f"cannot store the profile at {outcome.uri}: {'; '.join(outcome.notes)}")
    print(json.dumps({"profile": outcome.uri, "summary": summary_line(outcome.profile)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kubeloop drift``; returns the exit code (see the module docstring)."""
    arguments = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(arguments)
    except UsageError as error:
        print(f"kubeloop drift: usage error: {error} (see kubeloop drift --help)", file=sys.stderr)
        return error.exit_code
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else 0
    try:
        if args.command == "check":
            return run_check_command(args)
        return run_profile_command(args)
    except DriftError as error:
        print(f"kubeloop drift: error: {error}", file=sys.stderr)
        if args.command == "check" and not isinstance(error, OutputError):  # else the verdict is there
            _write_failure(args.termination_log, str(error))
        return error.exit_code


def _write_failure(path: str, message: str) -> None:
    """Best effort: the reason a check failed, as the pod's termination message."""
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(f"drift check failed: {message}"[:4096])
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
