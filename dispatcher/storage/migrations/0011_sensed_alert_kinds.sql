-- 0011_sensed_alert_kinds: three more kinds of alert (dispatcher.alerting.rules.AlertKind).
--
-- Depends on 0008_alerts.
--
-- vehicle_stuck: a robot expected to move made no progress (the dispatch watchdog);
-- battery_critical: at or below alerts.critical_battery_pct, not charging;
-- position_unreliable: a driver's position fixes keep being implausible (not used).
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN (
    'vehicle_offline', 'low_battery', 'fatal_error', 'safety_stop',
    'mission_waiting', 'mission_decision',
    'vehicle_stuck', 'battery_critical', 'position_unreliable'));
