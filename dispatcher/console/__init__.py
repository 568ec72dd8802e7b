"""``fleetd status``: the live terminal view of the fleet (Textual).

``client`` talks to the daemon (snapshot over HTTP, then the SSE event stream, resumed
with Last-Event-ID, reconnecting with back-off); ``model`` is the pure view model (state
from snapshots and events, rows, filters, sort orders); ``braille`` draws the facility
map; ``app`` and ``widgets`` are the Textual application. See docs/status-view.md.
"""
