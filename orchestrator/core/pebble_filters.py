"""The one registry of Kestra's Pebble filters, tests and functions that the expression environment installs.

Each family lives in its own module and fills its own tables: strings (`pebble_strings`), lists and maps
with Pebble's tests (`pebble_collections`), dates (`pebble_dates`), numbers, JSON and YAML (`pebble_data`),
general functions (`pebble_functions`), readers of earlier ForEach iterations (`pebble_iterations`), Kestra 2's
`subflow()` (`pebble_subflow`) and `parentOutput()` / `outputFromIteration()` (`pebble_parents`). What every
callable shares (the render deadline, the size limit and strict undefined values) is in `pebble_runtime`; the
values they handle are in `pebble_values`.
"""

from collections.abc import Callable
from typing import Any

from orchestrator.core import (
    pebble_collections,
    pebble_data,
    pebble_dates,
    pebble_functions,
    pebble_iterations,
    pebble_parents,
    pebble_strings,
    pebble_subflow,
)

FILTERS: dict[str, Callable[..., Any]] = {
    **pebble_strings.FILTERS,
    **pebble_collections.FILTERS,
    **pebble_dates.FILTERS,
    **pebble_data.FILTERS,
}
TESTS: dict[str, Callable[..., Any]] = dict(pebble_collections.TESTS)
FUNCTIONS: dict[str, Callable[..., Any]] = {
    **pebble_functions.FUNCTIONS,
    **pebble_iterations.FUNCTIONS,
    **pebble_dates.FUNCTIONS,
    **pebble_data.FUNCTIONS,
    **pebble_subflow.FUNCTIONS,
    **pebble_parents.FUNCTIONS,
}
