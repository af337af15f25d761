"""Runnable example pipelines; ``examples.fraud`` is the fraud-detection demo."""
