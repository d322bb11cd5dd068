"""Observability: logging configuration, Prometheus metrics and the collectors every process exposes.

Configured once per process by its entry point (`chorus ...`, `workers.app`, the API's lifespan); modules
elsewhere only declare a logger or record a metric. Imports: the core, settings and the store (for gauges
read at scrape time); never the engine, triggers, API, workers or CLI.
"""
