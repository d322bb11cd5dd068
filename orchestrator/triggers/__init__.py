"""Triggers: what starts executions besides the API — schedules, Flow triggers, realtime queues, trigger control.

Built on the engine's public API only (the layer below): the scheduler and the realtime runner call
`Engine.submit`/`create_execution`, and `wiring.build_engine` registers the Flow-trigger reaction on every
engine a process builds. Imports: the core, the store, the engine, settings, observability; never the API,
the workers or the CLI (layers core -> store -> engine -> triggers -> api/workers/cli).
"""
