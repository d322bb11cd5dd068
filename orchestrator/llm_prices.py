"""The AI settings section: the model price table that turns tokens into cost, and the limits of in-call retries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ModelPrice(BaseModel):
    """What a model costs, in US dollars per million tokens."""

    model_config = ConfigDict(frozen=True)

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


#: List prices at the time of writing; deployments override them with CHORUS_LLM='{"prices": {...}}'.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(input_per_mtok=0.15, output_per_mtok=0.60),
    "gpt-4o": ModelPrice(input_per_mtok=2.50, output_per_mtok=10.00),
    "gpt-4.1-mini": ModelPrice(input_per_mtok=0.40, output_per_mtok=1.60),
    "gpt-4.1": ModelPrice(input_per_mtok=2.00, output_per_mtok=8.00),
    "mistral-small": ModelPrice(input_per_mtok=0.10, output_per_mtok=0.30),
    "mistral-large": ModelPrice(input_per_mtok=2.00, output_per_mtok=6.00),
    "gemini-2.0-flash": ModelPrice(input_per_mtok=0.10, output_per_mtok=0.40),
    "deepseek-chat": ModelPrice(input_per_mtok=0.27, output_per_mtok=1.10),
    "claude-3-5-haiku": ModelPrice(input_per_mtok=0.80, output_per_mtok=4.00),
    "claude-sonnet-4": ModelPrice(input_per_mtok=3.00, output_per_mtok=15.00),
}


class LlmSettings(BaseModel):
    """Settings of LLM calls (the `llm` section of Settings, CHORUS_LLM as JSON)."""

    model_config = ConfigDict(frozen=True)

    prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="Price per model name (a key also prices dated variants: 'gpt-4o' prices 'gpt-4o-2024-08-06').",
    )
    max_attempts: int = Field(default=3, ge=1, le=10, description="HTTP attempts per call on 429, 5xx and timeouts.")
    max_retry_wait_s: float = Field(
        default=20.0,
        ge=0,
        description="Longest in-call wait (Retry-After included); a longer one fails the attempt as retryable, "
        "so the task's retry policy waits in the database instead of holding a worker.",
    )
    timeout_s: float = Field(default=120.0, gt=0, description="Per-request timeout when the task sets none.")


def price_for(prices: dict[str, ModelPrice], model: str) -> ModelPrice | None:
    """The exact model's price, else the longest key the name starts with (dated and suffixed variants)."""
    if model in prices:
        return prices[model]
    matches = [key for key in prices if model.startswith(key)]
    return prices[max(matches, key=len)] if matches else None


def cost_of(prices: dict[str, ModelPrice], model: str, tokens_in: int, tokens_out: int) -> float:
    """The dollar cost of one call; 0 for a model missing from the table (it is still counted in tokens)."""
    price = price_for(prices, model)
    if price is None:
        return 0.0
    return (tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok) / 1_000_000
