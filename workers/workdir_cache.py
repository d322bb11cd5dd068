"""A WorkingDirectory's `cache`: files matching `patterns` kept between executions of the flow for `ttl`.

After a run whose tasks all succeeded, the matching files are zipped into internal storage under the
flow (Kestra's `/<namespace>/<flow>/<task id>/cache/cache.zip`, ids as slugs); the next run of that
WorkingDirectory unpacks them into its fresh directory before its tasks start, unless the archive is older than `ttl`.
"""

from __future__ import annotations

import glob
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator import internal_storage as storage
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import TaskFailed
from orchestrator.engine import ClaimedTaskRun


def _archive(data_dir: Path, claimed: ClaimedTaskRun) -> Path:
    flow = claimed.flow
    uri_path = storage.flow_prefix(flow.namespace, flow.id) / storage.slug(claimed.task.id) / "cache" / "cache.zip"
    return storage.local_path(data_dir, f"{storage.SCHEME}{uri_path}")


def _settings(cache: Any) -> tuple[list[str], float | None]:
    if not isinstance(cache, dict) or not isinstance(cache.get("patterns"), list) or not cache["patterns"]:
        raise TaskFailed("cache needs 'patterns', a list of file globs", retryable=False)
    ttl = cache.get("ttl")
    return [str(p) for p in cache["patterns"]], parse_duration(str(ttl)).total_seconds() if ttl else None


def restore_cache(data_dir: Path, claimed: ClaimedTaskRun, workdir: Path, cache: Any) -> int:
    """Unpack a live cache archive into `workdir`; returns how many files it restored."""
    _, ttl = _settings(cache)
    archive = _archive(data_dir, claimed)
    if not archive.is_file():
        return 0
    age = datetime.now(UTC).timestamp() - archive.stat().st_mtime
    if ttl is not None and age > ttl:
        archive.unlink(missing_ok=True)  # expired: this run starts empty and writes a new one
        return 0
    root = workdir.resolve()
    with zipfile.ZipFile(archive) as bundle:
        members = [m for m in bundle.infolist() if not m.is_dir()]
        for member in members:
            target = (root / member.filename).resolve()
            if not target.is_relative_to(root):
                raise TaskFailed(f"cache entry {member.filename!r} leaves the working directory", retryable=False)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bundle.read(member))
    return len(members)


def save_cache(data_dir: Path, claimed: ClaimedTaskRun, workdir: Path, cache: Any) -> int:
    """Zip the files matching the patterns into the flow's cache archive; returns how many it kept."""
    patterns, _ = _settings(cache)
    names = sorted(
        {
            str(Path(match).relative_to(workdir))
            for pattern in patterns
            for match in glob.glob(str(workdir / pattern), recursive=True)
            if Path(match).is_file()
        }
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name in names:
            bundle.write(workdir / name, name)
    archive = _archive(data_dir, claimed)
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".part")
    partial.write_bytes(buffer.getvalue())
    partial.replace(archive)  # atomic: a concurrent run reads the old archive or the new one, never half
    return len(names)
