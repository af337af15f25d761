"""The fraud-detection demo: card transactions in, fraud alerts out.

- :mod:`examples.fraud.pipeline`: stateless rules over each transaction (``app``).
- :mod:`examples.fraud.bursts`: a stateful detector of bursts of small online
  purchases on one card, with session windows (``app``).
- :mod:`examples.fraud.run`: the end-to-end driver behind ``scripts/demo``: it
  publishes generated transactions, runs both apps and scores their alerts against
  the generator's ground truth.
"""
