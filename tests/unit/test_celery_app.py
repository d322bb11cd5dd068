"""create_celery_app: result and chord lifetimes, task-sent events and the fan-out chunk come from Settings."""

from __future__ import annotations

from orchestrator.celery_app import create_celery_app
from orchestrator.settings import load_settings


def test_results_expire_in_hours_while_chord_counters_outlive_long_fan_outs() -> None:
    app = create_celery_app(load_settings())

    assert app.conf.result_expires == 6 * 3600
    assert app.conf.result_chord_expires == 7 * 24 * 3600
    assert app.conf.task_send_sent_event is True  # Flower's only source of a task's queue
    assert app.conf.chorus_fanout_chunk == 50


def test_each_lifetime_the_sent_events_and_the_chunk_follow_their_settings() -> None:
    settings = load_settings(result_expires_s=600, chord_expires_s=7200, task_sent_events=False, fanout_chunk=1)
    app = create_celery_app(settings)

    assert (app.conf.result_expires, app.conf.result_chord_expires) == (600, 7200)
    assert app.conf.task_send_sent_event is False
    assert app.conf.chorus_fanout_chunk == 1
