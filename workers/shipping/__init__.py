"""The shipping service: shipments, and the simulated carrier that collects them."""

from workers.shipping.activities import ShippingActivities
from workers.shipping.carrier import CarrierSimulator
from workers.shipping.shipments import Shipment, ShipmentBook, ShipmentStatus

__all__ = ["CarrierSimulator", "Shipment", "ShipmentBook", "ShipmentStatus", "ShippingActivities"]
