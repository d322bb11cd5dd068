"""A namespace's files on local disk, for the API: list, search, stats, read, write, move and delete.

They are the files the namespace tasks (workers/nsfiles.py) and `read('/path')` use: namespace `a.b`'s file
`/dir/name` is `<data_dir>/storage/a/b/_files/dir/name`, Kestra's `kestra:///a/b/_files/dir/name`. Paths
follow Kestra's NamespaceFileController: relative to the namespace root, with or without a leading `/`, and
`/_flows` is reserved (Kestra keeps a namespace's flows there in its exports).
"""

from __future__ import annotations

import io
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from orchestrator.core.errors import Conflict, NotFound
from orchestrator.engine.kv import ValueInvalid, check_namespace

#: Kestra's forbidden path pattern: the folder its namespace export keeps flows in.
FLOWS_FOLDER = "_flows"
#: An uploaded zip is unpacked; past this many bytes unpacked it is refused (a small zip can unpack to gigabytes).
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class FileAttributes:
    """Kestra's `FileAttributes`: name, times in epoch milliseconds, `File` or `Directory`, size in bytes."""

    file_name: str
    last_modified_ms: int
    creation_ms: int
    is_directory: bool
    size: int


def root(data_dir: Path, namespace: str) -> Path:
    """The directory holding a namespace's files (it may not exist yet)."""
    return data_dir / "storage" / PurePosixPath(*check_namespace(namespace).split("."), "_files")


def resolve(data_dir: Path, namespace: str, path: str | None, *, field: str = "path") -> Path:
    """The local path of namespace file `path`; the root for an empty one. `..`, NUL and `/_flows` are refused."""
    relative = PurePosixPath((path or "").lstrip("/"))
    if "\x00" in str(relative) or ".." in relative.parts:
        raise ValueInvalid(field, "must be a path inside the namespace, without '..'")
    if relative.parts and relative.parts[0] == FLOWS_FOLDER:
        raise ValueInvalid(field, f"Forbidden path: /{relative}")
    return root(data_dir, namespace).joinpath(*relative.parts)


def _attributes(local: Path) -> FileAttributes:
    stat = local.stat()
    return FileAttributes(
        file_name=local.name,
        last_modified_ms=int(stat.st_mtime * 1000),
        # POSIX has no creation time; the inode change time is the nearest (Kestra's local storage does likewise)
        creation_ms=int(stat.st_ctime * 1000),
        is_directory=local.is_dir(),
        size=0 if local.is_dir() else stat.st_size,
    )


def _existing(data_dir: Path, namespace: str, path: str | None) -> Path:
    local = resolve(data_dir, namespace, path)
    if not local.exists():
        if not (path or "").strip("/"):  # the root exists as soon as it is asked for, as in Kestra
            local.mkdir(parents=True, exist_ok=True)
            return local
        raise NotFound("namespace file", f"{namespace}:/{(path or '').lstrip('/')}")
    return local


def stats(data_dir: Path, namespace: str, path: str | None) -> FileAttributes:
    return _attributes(_existing(data_dir, namespace, path))


def list_directory(data_dir: Path, namespace: str, path: str | None) -> list[FileAttributes]:
    """A directory's entries, directories first, then by name."""
    local = _existing(data_dir, namespace, path)
    if not local.is_dir():
        raise ValueInvalid("path", f"/{(path or '').lstrip('/')} is a file, not a directory")
    return sorted((_attributes(p) for p in local.iterdir()), key=lambda a: (not a.is_directory, a.file_name))


def search(data_dir: Path, namespace: str, text: str) -> list[str]:
    """Every file's path (`/dir/name`) containing `text`, as Kestra's `files/search`."""
    base = root(data_dir, namespace)
    if not base.is_dir():
        return []
    found = ("/" + p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
    return sorted(p for p in found if text in p)


def read(data_dir: Path, namespace: str, path: str) -> Path:
    """The local file to stream back; a directory or a missing file is a 404."""
    local = _existing(data_dir, namespace, path)
    if not local.is_file():
        raise NotFound("namespace file", f"{namespace}:/{path.lstrip('/')}")
    return local


def _put(target: Path, content: bytes) -> None:
    if target.is_dir():
        raise ValueInvalid("path", f"{target.name} is a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)


def write(data_dir: Path, namespace: str, path: str, filename: str, content: bytes) -> list[str]:
    """Keep an upload at `path`; a `.zip` is unpacked under the root instead, as Kestra does. Returns the paths."""
    if not filename.lower().endswith(".zip"):
        if not path.strip("/"):
            raise ValueInvalid("path", "name the file to create")
        _put(resolve(data_dir, namespace, path), content)
        return ["/" + path.lstrip("/")]
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile as e:
        raise ValueInvalid("fileContent", f"{filename} is not a zip archive") from e
    entries = [e for e in archive.infolist() if not e.is_dir()]
    if sum(e.file_size for e in entries) > MAX_UNZIPPED_BYTES:
        raise ValueInvalid("fileContent", f"{filename} unpacks to more than {MAX_UNZIPPED_BYTES} bytes")
    # Every name is checked before anything is written: a bad entry leaves the namespace as it was.
    targets = [(resolve(data_dir, namespace, e.filename, field="fileContent"), e) for e in entries]
    for target, entry in targets:
        _put(target, archive.read(entry))
    return ["/" + e.filename.lstrip("/") for _, e in targets]


def make_directory(data_dir: Path, namespace: str, path: str) -> None:
    resolve(data_dir, namespace, path).mkdir(parents=True, exist_ok=True)


def move(data_dir: Path, namespace: str, source: str, target: str) -> None:
    """Rename a file or directory; an existing target is a 409, never overwritten."""
    origin = _existing(data_dir, namespace, source)
    destination = resolve(data_dir, namespace, target, field="to")
    if origin == root(data_dir, namespace) or not target.strip("/"):
        raise ValueInvalid("from", "the namespace root cannot be moved")
    if destination.exists():
        raise Conflict(f"/{target.lstrip('/')} already exists")
    destination.parent.mkdir(parents=True, exist_ok=True)
    origin.rename(destination)


def delete(data_dir: Path, namespace: str, path: str) -> None:
    """Delete a file or a directory with its content, then the folders it leaves empty (Kestra's cascade)."""
    if not path.strip("/"):
        raise ValueInvalid("path", "the namespace root cannot be deleted")
    local = _existing(data_dir, namespace, path)
    if local.is_dir():
        shutil.rmtree(local)
    else:
        local.unlink()
    base = root(data_dir, namespace)
    parent = local.parent
    while parent != base and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
