"""Run the payment service: `python -m workers.payment`."""

from workers.payment.service import main

main()
