"""The active-learning engine: the driver, the run folder, round records, datasets; composes the Ray adapters
(see docs/architecture.md)."""
