"""Synthetic data for demos, tests and benchmarks."""

from millstream.producers.generators.transactions import (
    COUNTRIES,
    HIGH_RISK_COUNTRIES,
    FraudPattern,
    Transaction,
    TransactionGenerator,
)

__all__ = [
    "COUNTRIES",
    "HIGH_RISK_COUNTRIES",
    "FraudPattern",
    "Transaction",
    "TransactionGenerator",
]
