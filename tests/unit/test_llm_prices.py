"""The price table: exact model names, dated variants by prefix, unknown models at zero cost."""

from __future__ import annotations

import pytest

from orchestrator.llm_prices import DEFAULT_PRICES, ModelPrice, cost_of, price_for


def test_a_dated_variant_takes_the_longest_matching_price() -> None:
    assert price_for(DEFAULT_PRICES, "gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert price_for(DEFAULT_PRICES, "gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]


def test_cost_is_per_million_tokens_in_and_out() -> None:
    prices = {"m": ModelPrice(input_per_mtok=2.0, output_per_mtok=8.0)}
    assert cost_of(prices, "m", 500_000, 250_000) == pytest.approx(3.0)


def test_an_unpriced_model_costs_nothing() -> None:
    assert cost_of(DEFAULT_PRICES, "my-local-llama", 1000, 1000) == 0.0
