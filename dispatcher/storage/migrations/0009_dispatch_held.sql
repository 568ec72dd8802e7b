-- 0008_dispatch_held: the dispatch engine's decisions that must survive a restart (issue 15).
--
-- * missions.held_reason: set while a mission waits for an operator because its vehicle
--   was lost with the rider on board (mission event 'held'); cleared by 'reassigned',
--   'unassigned' and every final status (dispatcher/missions/changes.py decides, the store
--   writes). A restarted engine keeps such missions waiting, with their reason.
-- * mission_events.event gains 'unassigned' (a vehicle lost before the rider was on board:
--   the mission returns to pending) and 'held'.
--
-- Depends on 0003_missions. Named with the suffix _dispatch_held so it is told apart from
-- other 0008 migrations of parallel branches at merge time.

ALTER TABLE missions
    ADD COLUMN held_reason text CHECK (length(held_reason) BETWEEN 1 AND 200),
    ADD CONSTRAINT missions_held_in_progress
        CHECK (held_reason IS NULL OR status = 'in_progress');
COMMENT ON COLUMN missions.held_reason IS
    'Why the mission waits for an operator (vehicle lost with the rider on board); NULL '
    'when it does not. Set by the held event, cleared by reassigned, unassigned and the end.';

ALTER TABLE mission_events DROP CONSTRAINT mission_events_event_check;
ALTER TABLE mission_events ADD CONSTRAINT mission_events_event_check CHECK (event IN (
    'created', 'assigned', 'started', 'pickup_arrived', 'pickup_completed',
    'in_transit', 'dropoff_arrived', 'dropoff_completed', 'completed',
    'cancelled', 'failed', 'reassigned', 'offered', 'declined', 'expired',
    'priority_changed', 'unassigned', 'held'));
