"""Metrics set-up: one registry per process by default, multiprocess files when an entry point asks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from orchestrator.cli.embedded import free_port
from orchestrator.observability.metrics import MetricsSettings, exposition, metrics, record_llm_call, serve_metrics


def test_a_process_without_an_entry_point_exposes_its_metrics_from_one_registry() -> None:
    record_llm_call(
        "openai", "gpt-4o-mini", outcome="ok", prompt_tokens=10, completion_tokens=5, cost_usd=0.01, duration_s=0.3
    )

    text = exposition().decode()

    assert metrics() is metrics()
    assert 'chorus_llm_tokens_total{kind="prompt",model="gpt-4o-mini",provider="openai"}' in text
    assert "chorus_llm_cost_usd_total" in text


def test_preparing_a_multiprocess_directory_empties_it_and_aggregates_every_process(tmp_path: Path) -> None:
    stale = tmp_path / "counter_999.db"
    stale.write_bytes(b"left by a previous run")
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from orchestrator.observability.metrics import exposition, metrics, prepare_multiprocess_dir
        prepare_multiprocess_dir(Path({str(tmp_path)!r}))
        metrics().sweeper_recovered.inc(2)
        pid = os.fork()
        if pid == 0:
            metrics().sweeper_recovered.inc(3)
            os._exit(0)
        os.waitpid(pid, 0)
        print(exposition().decode())
        """
    )

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout

    assert not stale.exists()
    assert "chorus_sweeper_recovered_executions_total 5.0" in out


def test_serve_metrics_serves_this_process_and_steps_aside_when_its_port_is_taken() -> None:
    port = free_port()
    server = serve_metrics(MetricsSettings(port=port, host="127.0.0.1"))
    assert server is not None
    try:
        assert "chorus_sweeper_runs" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert serve_metrics(MetricsSettings(port=port, host="127.0.0.1")) is None
    finally:
        server.shutdown()
        server.server_close()
    assert serve_metrics(MetricsSettings(port=0)) is None
