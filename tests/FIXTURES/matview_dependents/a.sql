CREATE TABLE sales (region text NOT NULL, amount numeric NOT NULL);
CREATE MATERIALIZED VIEW region_totals AS SELECT region, sum(amount) AS total FROM sales GROUP BY region;
CREATE UNIQUE INDEX region_totals_region_idx ON region_totals (region);
CREATE VIEW big_regions AS SELECT region FROM region_totals WHERE total > 1000;
CREATE MATERIALIZED VIEW region_ranks AS SELECT region, rank() OVER (ORDER BY total DESC) AS rnk FROM region_totals;
CREATE INDEX region_ranks_rnk_idx ON region_ranks (rnk);
