"""crmsync: keep CRM pipeline data honest and portable.

The engine (model, config, mappings, warehouse, sync runner) lives here;
connectors live in :mod:`crmsync.connectors` and depend on this package,
never the other way round.
"""

__version__ = "0.1.0"
