CREATE TABLE jobs (id int PRIMARY KEY, state text DEFAULT 'new', tries text DEFAULT '0');
