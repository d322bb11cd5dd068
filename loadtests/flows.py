"""The flows the scenarios run, as Kestra YAML (each deployed into the namespace of one repetition)."""

from __future__ import annotations


def one_task(namespace: str) -> str:
    return f"""id: one
namespace: {namespace}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: one task run
"""


def linear(namespace: str, length: int = 5) -> str:
    tasks = "".join(
        f"  - id: t{i}\n    type: io.kestra.plugin.core.log.Log\n    message: step {i}\n" for i in range(length)
    )
    return f"id: linear\nnamespace: {namespace}\ntasks:\n{tasks}"


def crosspool(namespace: str) -> str:
    """Log, a task on the io pool, Log: the middle task travels to another pool and back.

    No io-pool task type works without the network (HTTP, Slack, Jira, mail, MCP), so the middle task is a
    Log sent to the io pool by its `workerGroup` (Chorus routes a task to the pool its workerGroup names): the
    hop is what is measured, and the raw side's io link does the same little work (one row)."""
    return f"""id: crosspool
namespace: {namespace}
tasks:
  - id: before
    type: io.kestra.plugin.core.log.Log
    message: before the io pool
  - id: io
    type: io.kestra.plugin.core.log.Log
    message: on the io pool
    workerGroup:
      key: io
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: back on control
"""


def fanout(namespace: str, width: int) -> str:
    values = ", ".join(str(i) for i in range(width))
    return f"""id: fanout
namespace: {namespace}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [{values}]
    concurrencyLimit: 0
    tasks:
      - id: item
        type: io.kestra.plugin.core.log.Log
        message: "{{{{ taskrun.value }}}}"
  - id: fanin
    type: io.kestra.plugin.core.log.Log
    message: all {width} done
"""


WEBHOOK_KEY = "loadtest-webhook-key"


def webhook(namespace: str) -> str:
    return f"""id: hook
namespace: {namespace}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "request {{{{ trigger.body.n }}}}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: {WEBHOOK_KEY}
"""


def chat(namespace: str, base_url: str, api_key: str) -> str:
    return f"""id: chat
namespace: {namespace}
tasks:
  - id: ask
    type: io.kestra.plugin.openai.ChatCompletion
    apiKey: {api_key}
    baseUrl: {base_url}
    model: gpt-4o-mini
    prompt: "loadtest {{{{ execution.id }}}}"
"""
