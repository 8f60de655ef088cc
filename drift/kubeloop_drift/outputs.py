"""Writing result.json and report.html to a local folder and/or a URI (file://, s3://)."""

from __future__ import annotations

import json
from pathlib import Path

from kubeloop_drift.errors import OutputError
from kubeloop_drift.sources import filesystem_for, one_line

RESULT_FILE = "result.json"
REPORT_FILE = "report.html"


def report_location(output_dir: str | None, report_uri: str | None) -> str | None:
    """Where the HTML report will be: the report URI when given, else the local file."""
    if report_uri:
        return f"{report_uri.rstrip('/')}/{REPORT_FILE}"
    if output_dir:
        return str((Path(output_dir) / REPORT_FILE).resolve())
    return None


def write_outputs(result_json: dict[str, object], report_html: str, destinations: list[str]) -> list[str]:
    """Write both files under every destination folder or URI prefix; the paths written."""
    written = []
    payload = json.dumps(result_json, indent=2, allow_nan=False)
    for destination in destinations:
        for name, text in ((RESULT_FILE, payload), (REPORT_FILE, report_html)):
            target = f"{destination.rstrip('/')}/{name}"
            try:
                filesystem, path = filesystem_for(target)
                parent = path.rsplit("/", 1)[0]
                if parent:
                    filesystem.makedirs(parent, exist_ok=True)
                with filesystem.open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
            except Exception as error:  # any storage failure (OSError, botocore, ...) is an output error
                raise OutputError(f"cannot write {target}: {one_line(error)}") from error
            written.append(target)
    return written
