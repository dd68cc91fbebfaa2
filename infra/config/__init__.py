"""Per-process configuration: settings, logs, tracing, the payload codec, API tokens, the Kafka
connection and the SDK's metrics. It starts nothing and imports no engine."""
