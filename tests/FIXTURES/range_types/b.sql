CREATE TYPE kept_range AS RANGE (subtype = numeric);
CREATE TYPE score_range AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE TYPE "Period" AS RANGE (subtype = timestamptz);
CREATE TYPE label_range AS RANGE (subtype = text, collation = "C");
CREATE TABLE t (id int PRIMARY KEY, k kept_range, s score_range, p "Period", l label_range);
