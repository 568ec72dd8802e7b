"""Alerts for facility staff: derived from live fleet state and open missions (``rules``,
pure), stored with their history (``store``), kept current by a daemon task (``watch``).
Listing and acknowledging go through :mod:`dispatcher.ops.alerts` (audited)."""
