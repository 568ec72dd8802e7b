"""The application layer: each operation of fleetd, once.

An operation checks the caller's permission and facility scope, makes the change, stores
it and writes its audit row (for a success and for a refusal alike), and returns a typed
outcome: a result, or a refusal carrying a reason enum. Nothing here knows HTTP: the API
routes and the CLI translate a request into an operation call and its outcome back into a
response; the dispatch engine calls the same operations with a system :class:`Caller`.

- :mod:`~dispatcher.ops.caller`: who asks (an API token, a local operator, the daemon).
- :mod:`~dispatcher.ops.audit`: building and writing audit rows (the only writer of them).
- :mod:`~dispatcher.ops.missions`: create, read, list, transition, cancel, prioritise.
- :mod:`~dispatcher.ops.vehicles`: vehicle commands and maintenance mode.
- :mod:`~dispatcher.ops.zones`: zone create and delete.
- :mod:`~dispatcher.ops.zone_stop`: the emergency stop of every vehicle in a zone.
- :mod:`~dispatcher.ops.tokens`: API token create and revoke.
- :mod:`~dispatcher.ops.access`: refused requests (401/403) and the event stream's scope.
"""
