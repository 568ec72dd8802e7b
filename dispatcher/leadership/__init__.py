"""Active/standby per facility: leases with fencing tokens in PostgreSQL.

:mod:`dispatcher.leadership.state` is the pure part (timings, each facility's role and
when it must step down, fences, holder ids); :mod:`dispatcher.leadership.service` runs it
against the database (:mod:`dispatcher.storage.leases`) as the supervised task
``fleetd.leadership``.
"""
