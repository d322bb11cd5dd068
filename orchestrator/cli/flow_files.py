"""Offline validation of flow files (``chorus flow validate PATH...``): reports per file, as text or JSON lines."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.cli.exit_codes import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from orchestrator.core.errors import FlowErrorDetail, FlowInvalid
from orchestrator.core.parse import MAX_DOCUMENT_BYTES
from orchestrator.engine.flow_validation import validate_flow_with_warnings

__all__ = ["FileReport", "chorus_flow_validate", "format_reports", "unsupported_types", "validate_paths"]

FLOW_SUFFIXES = (".yaml", ".yml")


@dataclass
class FileReport:
    """The outcome of validating one file."""

    path: Path
    valid: bool
    flow_key: str | None = None  #: ``namespace.id`` when the flow is valid
    errors: list[FlowErrorDetail] = field(default_factory=list)
    warnings: list[FlowErrorDetail] = field(default_factory=list)  #: expression syntax errors of a valid flow


def validate_paths(paths: Sequence[Path]) -> list[FileReport]:
    """Validate files and directories (searched recursively for *.yaml and *.yml), sorted by path.

    A path that does not exist is reported as an invalid file rather than raised, so one typo does
    not hide the results of the other paths.
    """
    files: set[Path] = set()
    for path in paths:
        if path.is_dir():
            files.update(f for f in path.rglob("*") if f.suffix in FLOW_SUFFIXES and f.is_file())
        else:
            files.add(path)
    return [_validate_file(f) for f in sorted(files)]


def _validate_file(path: Path) -> FileReport:
    try:
        # Checked before reading, so a huge file is refused without loading it.
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            return _invalid(path, f"the file is larger than {MAX_DOCUMENT_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _invalid(path, "no such file")
    except UnicodeDecodeError:
        return _invalid(path, "the file is not UTF-8 text")
    except OSError as e:
        return _invalid(path, f"cannot read the file: {e.strerror or e}")
    try:
        flow, warnings = validate_flow_with_warnings(text)
    except FlowInvalid as e:
        return FileReport(path, valid=False, errors=list(e.errors))
    return FileReport(path, valid=True, flow_key=flow.key, warnings=warnings)


def _invalid(path: Path, message: str) -> FileReport:
    return FileReport(path, valid=False, errors=[FlowErrorDetail("", message)])


_UNSUPPORTED = re.compile(r"^task type '(?P<type>[^']+)' is not supported by Chorus")


def unsupported_types(report: FileReport) -> list[str]:
    """The Kestra task types a file uses that Chorus does not implement, in order of first use."""
    found = (_UNSUPPORTED.match(e.message) for e in report.errors)
    return list(dict.fromkeys(m.group("type") for m in found if m is not None))


def format_reports(reports: Sequence[FileReport], *, as_json: bool) -> str:
    """Render reports: one text line per file (errors indented below it), or one JSON object per line; the
    text ends with the Kestra types the files use that Chorus does not support, when there are some."""
    if as_json:
        return "\n".join(json.dumps(_as_json(r), ensure_ascii=False) for r in reports)
    lines: list[str] = []
    for report in reports:
        if report.valid:
            lines.append(f"OK {report.path} {report.flow_key}")
            lines.extend(f"  warning: {warning}" for warning in report.warnings)
            continue
        first = str(report.errors[0]) if report.errors else "invalid"
        lines.append(f"INVALID {report.path}: {first}")
        lines.extend(f"  {error}" for error in report.errors)
    missing = list(dict.fromkeys(t for report in reports for t in unsupported_types(report)))
    if missing:
        lines.append(f"Not supported by Chorus: {', '.join(missing)}")
    return "\n".join(lines)


def _as_json(report: FileReport) -> dict[str, object]:
    return {
        "path": str(report.path),
        "valid": report.valid,
        "flow": report.flow_key,
        "errors": [
            {"path": e.path, "line": e.line, "column": e.column, "message": e.message, "suggestion": e.suggestion}
            for e in report.errors
        ],
        "unsupported": unsupported_types(report),
    }


def chorus_flow_validate(args: argparse.Namespace) -> int:
    """`chorus flow validate PATH...`: print a report per file; exit 1 if any flow is invalid."""
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"chorus: no such file or directory: {', '.join(map(str, missing))}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    reports = validate_paths(args.paths)
    print(format_reports(reports, as_json=args.json))  # noqa: T201
    return EXIT_OK if all(r.valid for r in reports) else EXIT_INVALID
