"""Operators' and developers' tools: bench, chaos, soak, audit, replay, dead letters,
projection rebuilds. Nothing in production imports it."""
