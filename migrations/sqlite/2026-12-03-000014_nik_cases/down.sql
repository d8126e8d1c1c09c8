ALTER TABLE accounts DROP COLUMN suspended_case;
ALTER TABLE accounts DROP COLUMN suspended_at;
DROP TABLE nik_case_events;
DROP TABLE nik_case_photos;
DROP TABLE nik_case_parties;
DROP TABLE nik_cases;
