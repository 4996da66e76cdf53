"""The durable workflow engine: executions, tasks, node semantics, timers, retries, dead letters."""
