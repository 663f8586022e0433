CREATE TYPE job_state AS ENUM ('new', 'done');
CREATE TABLE jobs (id int PRIMARY KEY, state job_state DEFAULT 'new', tries int DEFAULT 0);
