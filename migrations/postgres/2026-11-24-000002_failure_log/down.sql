DROP TABLE rate_events;
DROP TABLE failures;
