"""Batch and real-time scoring: the predictions contract and the business rules."""
