"""Run the shipping service: `python -m workers.shipping`."""

from workers.shipping.service import main

main()
