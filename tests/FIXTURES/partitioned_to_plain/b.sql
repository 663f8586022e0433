CREATE TABLE visits (id bigint NOT NULL, day date NOT NULL, page text, PRIMARY KEY (id, day));
CREATE VIEW daily_visits AS SELECT day, count(*) AS n FROM visits GROUP BY day;
