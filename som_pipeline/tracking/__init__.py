"""Tracking: carrier milestones in (X12 214, carrier-aggregator trackers, Shopify fulfillment events, Amazon
tracking notifications), normalised; honest ETAs learned from delivered history; exceptions and customer
notifications. Pure functions over Polars frames; the I/O shell is ``services/tracking.py``.

- ``milestones`` the normalised milestones and exception subtypes, and the carriers' codes mapped to them
- ``parsers``    each source format -> normalised event rows + rejects (reason, message, location, raw)
- ``eta``        transit-time quantiles per carrier x service x lane, conditioned on the milestone and its age;
                 P50/P90 and P(late); the backtest
"""
