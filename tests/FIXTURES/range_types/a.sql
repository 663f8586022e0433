CREATE TYPE old_range AS RANGE (subtype = int4);
CREATE TYPE kept_range AS RANGE (subtype = numeric);
CREATE TABLE t (id int PRIMARY KEY, r old_range, k kept_range);
