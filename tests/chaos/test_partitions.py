"""A cluster across hosts survives network partitions: nothing lost, duplicated or stuck, no split-brain.

One cluster (tests/chaos/netns_cluster.py: PostgreSQL, Redis, two server hosts, a control and two scripts
worker hosts, each in its own network namespace) serves every partition in turn, each with a workload of
its own. Needs root, `ip` and `nft`; slow (a minute or more per partition), so not in the default run:
`pytest -m "chaos and slow" tests/chaos/test_partitions.py`, or `python -m tests.chaos`. The table goes
to tests/chaos/results/partitions-table.md under `python -m tests.chaos`, else to the temporary directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.chaos.conftest import results_path
from tests.chaos.netns_cluster import NetnsCluster
from tests.chaos.partitions import HOLD_FACTOR, PARTITIONS, PartitionResult, run_partition, table
from tests.harness.netns import netns_available

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

EXECUTIONS = int(os.environ.get("CHORUS_PARTITION_EXECUTIONS", "12"))

LEGEND = """# Partition results: a cluster across hosts

{date}, {cpus} CPUs (shared with other work). Every component in its own network namespace (PostgreSQL,
Redis, two server hosts each with its sweeper and scheduler, a control and two scripts worker hosts);
partitions are nft DROP rules (connections hang, as on a real split) held for {factor:g} stale windows
(CHORUS_STALE_AFTER_S={stale:g}), then healed. `duration`: how long the partition held; `lost`, `duplicated`,
`stuck`, `wrong state` as in chaos-table.md; `split-brain`: an execution ended twice or a task run created
twice for one position by the two servers; `re-run after cut`: a script that finished on a host cut from
PostgreSQL before its worker could know (the fence: CHORUS_STALE_AFTER_S - CHORUS_HEARTBEAT_INTERVAL_S without a
confirmed heartbeat), whose outcome nobody could record, run again by the take-over (at-least-once, as after a
kill -9); `time to recover`: from the heal until every execution ended.

"""


@pytest.fixture(scope="module")
def netns_cluster() -> Iterator[NetnsCluster]:
    problem = netns_available()
    if problem is not None:
        pytest.fail(f"the partition tests need network namespaces: {problem}")
    root = Path(tempfile.mkdtemp(prefix="chorus-netns-"))
    cluster = NetnsCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
    if not cluster.keep_logs:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def partition_results(netns_cluster: NetnsCluster) -> Iterator[list[PartitionResult]]:
    results: list[PartitionResult] = []
    yield results
    if results:
        path = results_path().parent / "partitions-table.md"
        legend = LEGEND.format(
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            cpus=os.cpu_count(),
            factor=HOLD_FACTOR,
            stale=netns_cluster.windows.stale_after_s,
        )
        path.write_text(legend + table(results))


@pytest.fixture
def ledger_dir(netns_cluster: NetnsCluster) -> Path:
    # Scripts write the ledger; a root worker runs them as an unprivileged user (workers/sandbox.py).
    path = netns_cluster.root / "ledger"
    path.mkdir(exist_ok=True)
    path.chmod(0o1777)
    return path


@pytest.mark.timeout(600)
@pytest.mark.parametrize("partition", list(PARTITIONS))
def test_a_partition_longer_than_the_stale_windows_loses_duplicates_and_strands_nothing(
    partition: str, netns_cluster: NetnsCluster, ledger_dir: Path, partition_results: list[PartitionResult]
) -> None:
    result = run_partition(netns_cluster, ledger_dir, partition, EXECUTIONS)
    partition_results.append(result)
    netns_cluster.keep_logs |= not result.clean
    assert result.clean, table([result]) + f"\nlogs in {netns_cluster.root}"
