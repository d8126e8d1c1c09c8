DROP TABLE status_notices;
