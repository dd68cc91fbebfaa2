"""Records shared by several events: money and lines of goods."""

from pydantic import BaseModel, ConfigDict, Field

from contracts.envelope import CurrencyCode

__all__ = ["Money", "OrderLine", "PricedLine", "StockLine"]


class Money(BaseModel):
    """An amount in the currency's minor units (cents), so no rounding ever happens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount_minor: int = Field(ge=0)
    currency: CurrencyCode


class OrderLine(BaseModel):
    """One line of an order: what, how many, at what unit price (in the order's currency)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    unit_price_minor: int = Field(ge=0)


class StockLine(BaseModel):
    """A quantity of one SKU, as inventory reserves and releases it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class PricedLine(BaseModel):
    """A quantity of one SKU at the unit price it was bought for (a returned line)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    unit_price: Money
