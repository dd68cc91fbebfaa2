"""A simulated card processor that answers to the usual card-processor test tokens."""

from dataclasses import dataclass
from enum import StrEnum

from contracts.events.common import Money

__all__ = [
    "DECLINED_TOKEN",
    "FLAKY_TOKEN",
    "REFUND_FAIL_TOKEN",
    "REFUND_OUTAGE_TOKEN",
    "SUCCESS_TOKEN",
    "CardProcessor",
    "ChargeOutcome",
    "ChargeResponse",
]

SUCCESS_TOKEN = "tok_visa"
DECLINED_TOKEN = "tok_chargeDeclined"
FLAKY_TOKEN = "tok_flaky"
REFUND_FAIL_TOKEN = "tok_refundFail"
REFUND_OUTAGE_TOKEN = "tok_refundOutage"


class ChargeOutcome(StrEnum):
    """How the processor answered a charge."""

    APPROVED = "approved"
    DECLINED = "declined"
    UNAVAILABLE = "unavailable"
    """A transient failure: the same charge may succeed when tried again."""


@dataclass(frozen=True)
class ChargeResponse:
    """The processor's answer; ``reason`` says why when it is not approved."""

    outcome: ChargeOutcome
    reason: str | None = None


class CardProcessor:
    """Approves ``tok_visa``, declines ``tok_chargeDeclined`` and unknown tokens.

    ``tok_refundFail`` is approved, but every refund of it fails transiently: the saga's
    compensation keeps failing until an operator settles it (an ops drill).

    ``tok_refundOutage`` is approved, and the refund of a cancelled order goes through, but
    every refund of a return fails transiently: the return saga's refund step stays stuck
    until an operator settles it.

    ``tok_flaky`` fails transiently on the first ``flaky_failures`` attempts of an order and
    is approved after that. The attempt number comes from the caller, who counts attempts
    durably, so the behaviour survives a restart of the service.
    """

    def __init__(self, *, flaky_failures: int = 2) -> None:
        self._flaky_failures = flaky_failures

    def charge(self, token: str, amount: Money, *, attempt: int) -> ChargeResponse:
        """Charge ``amount`` to the card behind ``token``; ``attempt`` counts from 1."""
        if token in (SUCCESS_TOKEN, REFUND_FAIL_TOKEN, REFUND_OUTAGE_TOKEN):
            return ChargeResponse(ChargeOutcome.APPROVED)
        if token == FLAKY_TOKEN:
            if attempt <= self._flaky_failures:
                return ChargeResponse(
                    ChargeOutcome.UNAVAILABLE,
                    f"card processor unavailable (attempt {attempt} of a flaky card)",
                )
            return ChargeResponse(ChargeOutcome.APPROVED)
        if token == DECLINED_TOKEN:
            return ChargeResponse(ChargeOutcome.DECLINED, "card declined")
        return ChargeResponse(ChargeOutcome.DECLINED, "unknown payment token")

    def refund(
        self, token: str | None, amount: Money, *, of_return: bool = False
    ) -> ChargeResponse:
        """Give ``amount`` back to the card behind ``token`` (``None``: a card that can be);
        ``of_return``: the refund of a return, in part of the charge."""
        if token == REFUND_FAIL_TOKEN or (of_return and token == REFUND_OUTAGE_TOKEN):
            return ChargeResponse(
                ChargeOutcome.UNAVAILABLE, "card processor refuses refunds for this card now"
            )
        return ChargeResponse(ChargeOutcome.APPROVED)
