"""The fraud-detection demo: card transactions in, fraud alerts out.

The live demo (``scripts/demo``; see docs/fraud-demo.md):

- :mod:`examples.fraud.stream`: the live generator, five fraud patterns labelled in
  record headers; :mod:`examples.fraud.publishing` publishes it at a set rate;
- :mod:`examples.fraud.detectors`: the detectors, one stateful app (``app``), and
  the dashboard's panels (``dashboard_panels``, from :mod:`examples.fraud.panels`);
  :mod:`examples.fraud.rules` holds their logic, :mod:`examples.fraud.tables` their
  PostgreSQL tables;
- :mod:`examples.fraud.live`: the driver behind ``scripts/demo`` (PostgreSQL,
  workers, dashboard, stream, summary); :mod:`examples.fraud.live_report` and
  :mod:`examples.fraud.scoring` score a run against the labels.

The batch demo (``scripts/demo --batch``):

- :mod:`examples.fraud.pipeline`: stateless rules over each transaction (``app``).
- :mod:`examples.fraud.bursts`: a stateful detector of bursts of small online
  purchases on one card, with session windows (``app``).
- :mod:`examples.fraud.run`: it publishes generated transactions, runs both apps
  and scores their alerts against the generator's ground truth.
"""
