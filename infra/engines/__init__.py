"""The engines' processes: the embedded stack, the Kafka broker, the Temporal server, the
process records and the secured broker's material. Only tooling (``cli``, ``ops``) uses it."""
