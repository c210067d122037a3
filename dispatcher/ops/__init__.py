"""Operating dispatcher: logs, metrics, health."""
