"""Who a script process runs as, and what it may reach: a dedicated unprivileged user when the worker is root.

A script is flow-author code; the worker holds the database URL, the admin password, `SECRET_*` and the
audit key, and its data directory holds every namespace's files. Two boundaries keep them apart:

- the script's environment is built from an allow-list (`scripts._environment`), never copied from the worker;
- when the worker runs as root (containers, `chorus local` as root) the script runs as `CHORUS_SCRIPTS_USER`
  (default: `chorus-script` when that user exists, else `nobody`), without root's groups, in a directory it
  owns. Another uid cannot read the worker's `/proc/<pid>/environ` nor the storage root (kept 0700 by root).

When the worker is not root there is no second uid to switch to: the worker process is made undumpable
(`orchestrator.hardening`), which closes `/proc/<pid>/environ`, but files the worker's user can read remain
readable to scripts. Run workers as root-then-drop, or in a container per pool (docs/security.md).
"""

from __future__ import annotations

import functools
import os
import pwd
import resource
import shutil
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.errors import ConfigurationError

#: Preferred account for scripts when the operator created one (its own uid: nothing else runs as it).
DEDICATED_USER = "chorus-script"
FALLBACK_USER = "nobody"


@dataclass(frozen=True)
class ScriptUser:
    """The account a script process switches to before exec."""

    name: str
    uid: int
    gid: int


@functools.cache
def script_user(configured: str | None) -> ScriptUser | None:
    """The account scripts run as: None when the worker is not root (it cannot switch), else a non-root user."""
    if os.geteuid() != 0:
        return None
    names = [configured] if configured else [DEDICATED_USER, FALLBACK_USER]
    for name in names:
        try:
            entry = pwd.getpwnam(name) if not name.isdigit() else pwd.getpwuid(int(name))
        except KeyError:
            continue
        if entry.pw_uid == 0:
            raise ConfigurationError("CHORUS_SCRIPTS_USER", f"scripts must not run as root (got {name!r})")
        return ScriptUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    raise ConfigurationError("CHORUS_SCRIPTS_USER", f"no such user {names[0]!r} to run scripts as")


@dataclass(frozen=True)
class ScriptLimits:
    """Kernel resource limits (setrlimit) a script process and its children start with; 0 means none.

    They are per process (memory, file size, CPU) or per user (processes), not a cgroup: a script can still
    spread its memory over many processes, up to `processes` of them.
    """

    memory_bytes: int = 0
    file_bytes: int = 0
    processes: int = 0
    cpu_s: int = 0

    def named(self, user: ScriptUser | None) -> list[tuple[str, int]]:
        """The limits to set, by `resource` constant name."""
        wanted = [("RLIMIT_AS", self.memory_bytes), ("RLIMIT_FSIZE", self.file_bytes), ("RLIMIT_CPU", self.cpu_s)]
        # RLIMIT_NPROC counts every process of the real uid: only meaningful for a uid of the scripts' own; the
        # worker's user (no switch) also runs the worker's processes and threads.
        if user is not None:
            wanted.append(("RLIMIT_NPROC", self.processes))
        return [(name, value) for name, value in wanted if value > 0]

    def preexec(self, user: ScriptUser | None) -> Callable[[], None]:
        """What the child runs between fork and exec (after the switch of user), lowering its limits."""
        limits = [(getattr(resource, name), value) for name, value in self.named(user)]

        def apply() -> None:
            for which, value in limits:
                _, hard = resource.getrlimit(which)
                ceiling = value if hard == resource.RLIM_INFINITY else min(value, hard)
                resource.setrlimit(which, (ceiling, ceiling))

        return apply


#: Run by `launcher`: become the script user (when given), lower the limits, then exec the command.
_LAUNCH = """import os, resource, sys
uid, gid, limits, command = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
if uid >= 0:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
for item in filter(None, limits.split(",")):
    name, value = item.split("=")
    which = getattr(resource, name)
    hard = resource.getrlimit(which)[1]
    ceiling = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
    resource.setrlimit(which, (ceiling, ceiling))
os.execvp(command[0], command)
"""


def launcher(user: ScriptUser | None, limits: ScriptLimits) -> list[str]:
    """The argv prefix that runs a command as a script would run (its user, its limits), for processes a
    library starts itself (an MCP stdio server), where no `preexec_fn` can be given."""
    spec = ",".join(f"{name}={value}" for name, value in limits.named(user))
    uid, gid = (user.uid, user.gid) if user is not None else (-1, -1)
    return [sys.executable, "-I", "-c", _LAUNCH, str(uid), str(gid), spec]


def hand_over(workdir: Path, user: ScriptUser | None) -> None:
    """Give the run directory and everything in it (input files) to the script's user."""
    if user is not None:
        _chown_tree(workdir, user.uid, user.gid)


def reclaim(workdir: Path, user: ScriptUser | None) -> None:
    """Take the run directory back from the script's user once it has exited (to read outputs, then delete)."""
    if user is not None and workdir.exists():
        _chown_tree(workdir, os.geteuid(), os.getegid())


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    # Never through a link: a script's `ln -s /etc x` must not make the worker chown what it points to.
    os.chown(root, uid, gid, follow_symlinks=False)
    for directory, subdirs, files in os.walk(root, followlinks=False):
        for name in (*subdirs, *files):
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


@functools.cache
def close_storage_root(data_dir: Path) -> None:
    """Keep the storage root to the worker's user alone: a script's user must not list or read it."""
    root = data_dir / "storage"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)


def python_for(user: ScriptUser | None) -> str:
    """The interpreter `python` means in a script: this worker's, unless the script's user cannot run it.

    A virtualenv under /root (0700) is out of reach of `nobody`; the system interpreter then serves.
    """
    if user is None or _can_execute(sys.executable, user):
        return sys.executable
    for candidate in (shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin"), "/usr/bin/python3"):
        if candidate and _can_execute(candidate, user):
            return candidate
    return sys.executable  # the script will fail with a clear "Permission denied"


def _can_execute(path: str, user: ScriptUser) -> bool:
    """Whether `user` can traverse to `path` and execute it (mode bits only; enough to choose an interpreter)."""
    target = Path(os.path.realpath(path))
    if not _allows(target, user, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
        return False
    return all(_allows(parent, user, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH) for parent in target.parents)


def _allows(path: Path, user: ScriptUser, owner_bit: int, group_bit: int, other_bit: int) -> bool:
    try:
        info = path.stat()
    except OSError:
        return False
    if info.st_uid == user.uid:
        return bool(info.st_mode & owner_bit)
    if info.st_gid == user.gid:
        return bool(info.st_mode & group_bit)
    return bool(info.st_mode & other_bit)
