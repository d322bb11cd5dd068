"""A bulk action goes on past an execution the engine refuses at its turn, and says which and why."""

from __future__ import annotations

from api.routes.bulk_actions import act_on_each
from orchestrator.core.errors import Conflict, NoTaskToRestart


def test_refused_ids_are_skipped_with_the_engines_reason_and_the_others_still_go_ahead() -> None:
    acted: list[str] = []

    def restart(execution_id: str) -> None:
        if execution_id == "ended-since":
            raise Conflict("execution ended-since is SUCCESS: nothing to restart")
        if execution_id == "no-failed-task":
            raise NoTaskToRestart(execution_id)
        acted.append(execution_id)

    done, skipped = act_on_each(["a", "ended-since", "b", "no-failed-task"], restart)

    assert (done, acted) == (2, ["a", "b"])
    assert [entry["id"] for entry in skipped] == ["ended-since", "no-failed-task"]
    assert skipped[0]["message"] == "execution ended-since is SUCCESS: nothing to restart"
    assert skipped[1]["message"] == "No task found to restart execution from!"
