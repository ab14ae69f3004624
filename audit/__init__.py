"""Auditing deals: replay histories against current code, timelines, state as of an instant,
verification of the event log against Temporal's history, and offline bundles."""
