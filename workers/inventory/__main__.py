"""Run the inventory service: `python -m workers.inventory`."""

from workers.inventory.service import main

main()
