"""The mixed workload: linear, parallel, ForEach, subflow, pause+resume and retry flows whose script tasks
record their side effects in the ledger, and what each execution must end with."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from tests.chaos.recorder import Ledger


@dataclass(frozen=True)
class Expectation:
    """What a finished execution of a flow holds: its side-effect tasks and task-run count."""

    effects: tuple[str, ...]  #: task ids of side effects, one entry per task run (ForEach repeats)
    task_runs: int


EXPECTED: dict[str, Expectation] = {
    "linear": Expectation(("first", "second"), 4),
    "parallel": Expectation(("left", "right"), 4),
    "foreach": Expectation(("item", "item", "item"), 4),
    "subflow": Expectation(("after-call",), 2),
    "child": Expectation(("child-effect",), 1),
    "pause": Expectation(("before", "after"), 3),
    "retry": Expectation(("flaky",), 2),
}
#: The flows the driver starts, in round-robin order (`child` starts from `subflow`).
ROOTS = ("linear", "parallel", "foreach", "subflow", "pause", "retry")


def _effect(task_id: str, ledger: Ledger, sleep_s: float, *, extra: str = "", indent: int = 4) -> str:
    script = ledger.script(sleep_s)
    body = textwrap.indent(extra + script, " " * (indent + 4))
    return (
        f"{' ' * indent}- id: {task_id}\n"
        f"{' ' * indent}  type: io.kestra.plugin.scripts.python.Script\n"
        f"{' ' * indent}  script: |\n{body}"
    )


def flows(namespace: str, ledger: Ledger, sleep_s: float) -> list[str]:
    """The YAML sources, child first so the subflow's target exists."""

    def effect(task_id: str, indent: int = 2, extra: str = "") -> str:
        return _effect(task_id, ledger, sleep_s, extra=extra, indent=indent)

    # The first attempt fails before its side effect; the retry (same task run) records it once.
    fail_first = "import sys\nif {{ taskrun.attemptsCount }} < 1:\n    sys.exit(3)\n"
    return [
        f"id: child\nnamespace: {namespace}\ntasks:\n{effect('child-effect')}",
        f"""id: linear
namespace: {namespace}
tasks:
{effect("first")}
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "between the two side effects of {{{{ execution.id }}}}"
{effect("second")}
  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.first.exitCode }}}}-{{{{ outputs.second.exitCode }}}}"
""",
        f"""id: parallel
namespace: {namespace}
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
{effect("left", indent=6)}
{effect("right", indent=6)}
  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.left.exitCode }}}}-{{{{ outputs.right.exitCode }}}}"
""",
        f"""id: foreach
namespace: {namespace}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", "c"]
    concurrencyLimit: 2
    tasks:
{effect("item", indent=6)}
""",
        f"""id: subflow
namespace: {namespace}
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {namespace}
    flowId: child
    wait: true
    transmitFailed: true
{effect("after-call")}
""",
        f"""id: pause
namespace: {namespace}
tasks:
{effect("before")}
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
{effect("after")}
""",
        f"""id: retry
namespace: {namespace}
tasks:
{effect("flaky", extra=fail_first).replace("  type: io.kestra.plugin.scripts.python.Script", _RETRY, 1)}
  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.flaky.exitCode }}}}"
""",
    ]


_RETRY = """  type: io.kestra.plugin.scripts.python.Script
    retry:
      type: constant
      interval: PT0.5S
      maxAttempt: 3"""
