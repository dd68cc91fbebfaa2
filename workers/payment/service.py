"""The payment service process: its composition root."""

from contracts.task_queues import PAYMENT
from runtime import ServiceContext, ServiceParts, run_service
from workers.payment.activities import PaymentActivities
from workers.payment.ledger import PaymentLedger
from workers.payment.processor import CardProcessor
from workers.payment.queries import database_path

__all__ = ["build", "main"]


def build(context: ServiceContext) -> ServiceParts:
    """The payment service's activities on its ledger and the simulated card processor."""
    processor = CardProcessor(flaky_failures=context.settings.payment_flaky_failures)
    payments = PaymentActivities(PaymentLedger(context.db), context.outbox, processor)
    return ServiceParts(activities=[payments.charge, payments.refund, payments.refund_return])


def main() -> None:
    """Run the payment service until SIGTERM."""
    run_service(
        "payment",
        task_queue=PAYMENT,
        database=database_path,
        migrations=PaymentLedger.MIGRATIONS,
        build=build,
    )
