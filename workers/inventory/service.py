"""The inventory service process: its composition root."""

import logging

from contracts.task_queues import INVENTORY
from infra.config.settings import ConfigurationError, Settings
from runtime import Database, ServiceContext, ServiceParts, run_service
from workers.inventory.activities import InventoryActivities
from workers.inventory.queries import database_path, seed_file, seeded_levels
from workers.inventory.stock import StockBook

__all__ = ["build", "main", "seeded_stock"]

log = logging.getLogger(__name__)


def seeded_stock(settings: Settings, db: Database) -> StockBook:
    """The stock in ``db``, seeded from the seed file the first time the service runs.

    Raises:
        ConfigurationError: the seed file cannot be read.
    """
    stock = StockBook(db)
    seeds = seed_file(settings.inventory_seed_file)
    try:
        levels = seeded_levels(seeds)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the inventory seed file {seeds}: {exc}") from None
    if stock.seed(levels):
        log.info("stock seeded from %s", seeds)
    return stock


def build(context: ServiceContext) -> ServiceParts:
    """The inventory service's activities on its seeded stock."""
    inventory = InventoryActivities(seeded_stock(context.settings, context.db), context.outbox)
    return ServiceParts(activities=[inventory.reserve, inventory.release, inventory.restock])


def main() -> None:
    """Run the inventory service until SIGTERM."""
    run_service(
        "inventory",
        task_queue=INVENTORY,
        database=database_path,
        migrations=StockBook.MIGRATIONS,
        build=build,
    )
