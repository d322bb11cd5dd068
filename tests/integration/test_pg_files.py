"""Where embedded PostgreSQL's binaries and cluster live when root runs it as a system account (`pg_files`)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli import pg_files
from orchestrator.cli.pg_files import Account, blocking_dir, cluster_dir
from orchestrator.core.errors import ConfigurationError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another account only when we are root")

#: Not our uid nor group: what any other account sees of our directories.
_OTHER_GID = os.getegid() + 4242
STRANGER = Account("stranger", uid=os.geteuid() + 4242, gid=_OTHER_GID, groups=frozenset({_OTHER_GID}))


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every account can reach (pytest's tmp_path is below a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="chorus-pg-files-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_blocking_dir_names_the_first_directory_another_account_cannot_search(open_dir: Path) -> None:
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    (private / "data").mkdir()

    assert blocking_dir(private / "data", STRANGER) == private
    assert blocking_dir(open_dir, STRANGER) is None


def test_a_reachable_data_dir_keeps_its_cluster(open_dir: Path) -> None:
    assert cluster_dir(open_dir, STRANGER, clusters_root=open_dir / "clusters") == open_dir / "pgdata"


def test_an_unreachable_data_dir_gets_a_cluster_elsewhere_and_keeps_its_permissions(
    open_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    data_dir = private / "data"
    data_dir.mkdir()
    clusters = open_dir / "lib" / "clusters"

    chosen = cluster_dir(data_dir, STRANGER, clusters_root=clusters)

    assert chosen.parent.parent == clusters and chosen.name == "pgdata"
    assert (chosen.parent / "data-dir").read_text().strip() == str(data_dir)
    assert blocking_dir(chosen.parent, STRANGER) is None
    assert stat.S_IMODE(private.stat().st_mode) == 0o700  # never widened
    assert f"cannot enter {private}" in caplog.text and "chmod o+x" in caplog.text
    assert cluster_dir(data_dir, STRANGER, clusters_root=clusters) == chosen  # the same one at every start


@as_root
def test_as_root_the_binaries_are_copied_where_the_account_can_run_them(open_dir: Path) -> None:
    account = pg_files.postgres_account()
    assert account is not None

    bin_dir = pg_files.bin_dir_for(account, cache_root=open_dir / "cache")

    assert bin_dir.is_relative_to(open_dir / "cache")
    version = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], user=account.uid, group=account.gid, extra_groups=[],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "PostgreSQL" in version.stdout
    assert pg_files.bin_dir_for(account, cache_root=open_dir / "cache") == bin_dir  # copied once


@as_root
def test_as_root_a_binary_cache_others_may_write_is_refused(open_dir: Path) -> None:
    account = pg_files.postgres_account()
    assert account is not None
    cache = open_dir / "cache"
    pg_files.bin_dir_for(account, cache_root=cache)
    cache.chmod(0o777)

    with pytest.raises(ConfigurationError) as caught:
        pg_files.bin_dir_for(account, cache_root=cache)

    assert caught.value.name == "postgres"
    assert str(cache) in caught.value.message


@as_root
def test_as_root_an_incomplete_binary_cache_is_refused_naming_it(open_dir: Path) -> None:
    account = pg_files.postgres_account()
    assert account is not None
    cache = open_dir / "cache"
    (cache / f"postgres-{pg_files.install_version()}" / "bin").mkdir(parents=True)

    with pytest.raises(ConfigurationError) as caught:
        pg_files.bin_dir_for(account, cache_root=cache)

    assert "not a complete copy" in caught.value.message and str(cache) in caught.value.message
