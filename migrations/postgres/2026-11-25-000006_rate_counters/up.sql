-- Rate limits as counters per key and fixed window, so that checking and
-- counting is one conditional update (atomic under parallel requests, on
-- every instance), and the time until the window ends is known exactly
-- (the 429 page's wait and its Retry-After agree).
CREATE TABLE rate_counters (
    key TEXT PRIMARY KEY NOT NULL,
    window_end TIMESTAMP NOT NULL,
    count INTEGER NOT NULL
);
CREATE INDEX rate_counters_window_end ON rate_counters (window_end);
DROP TABLE rate_events;

-- What was typed into an email field that is not an email address is kept
-- only as its kind and length ("digits:16", "text:23"): a NIK or a password
-- typed there must not end up in the failure log.
ALTER TABLE failures ADD COLUMN email_shape TEXT;
