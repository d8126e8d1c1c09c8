ALTER TABLE failures DROP COLUMN resolved_by;
ALTER TABLE failures DROP COLUMN resolved_at;
DROP TABLE failure_notes;
DROP TABLE staff_audit;
DROP TABLE staff;
