-- +goose Up
-- +goose StatementBegin
-- marts.client_stats keeps each client's purchase days and revenues in two
-- arrays. After a backfill the first client update writes one row per client
-- (860,000 for a year of the real API's data), and the server's parsing of
-- those arrays was most of its cost: a date_in per purchase day and a
-- numeric_in per revenue, about 2 M of each (docs/benchmarks.md, "Fourth
-- round"). Both change form; neither changes meaning:
--   * days holds day numbers (days since 2000-01-01, as rfm_histogram's r
--     buckets), which the server parses as plain integers and the SQL
--     compares and subtracts as it did dates;
--   * revenues holds the text of the numeric[] literal, which the server
--     only copies; the statements that read revenues parse it where they
--     read it (a day's few thousand touched clients, not all of them), as
--     day_summaries' long arrays are read.
-- client_day, the view over the arrays, keeps its columns and types.
DROP VIEW marts.client_day;

CREATE FUNCTION pg_temp.day_numbers(days date[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT coalesce(array_agg(d - date '2000-01-01' ORDER BY i), '{}')
    FROM unnest(days) WITH ORDINALITY AS u(d, i)
$fn$;

ALTER TABLE marts.client_stats
    ALTER days TYPE integer[] USING pg_temp.day_numbers(days),
    ALTER revenues TYPE text USING revenues::text;
ALTER TABLE marts.client_stats ALTER days SET STATISTICS 0, ALTER revenues SET STATISTICS 0;
COMMENT ON COLUMN marts.client_stats.days IS 'The client''s purchase days as day numbers (days since 2000-01-01), ascending (cardinality = frequency).';
COMMENT ON COLUMN marts.client_stats.revenues IS 'Revenue (sum of total_price) of the client on each day of days, same order: the text of a numeric[] literal (read it as revenues::numeric[]).';

CREATE VIEW marts.client_day AS
SELECT c.client_id, date '2000-01-01' + u.day AS day, u.revenue
FROM marts.client_stats c, unnest(c.days, c.revenues::numeric[]) AS u(day, revenue);
COMMENT ON VIEW marts.client_day IS 'Internal helper, grain: client and day with a purchase: the days and revenues of marts.client_stats, one row each.';
COMMENT ON COLUMN marts.client_day.client_id IS 'Client id.';
COMMENT ON COLUMN marts.client_day.day IS 'Business day of the purchases.';
COMMENT ON COLUMN marts.client_day.revenue IS 'Revenue (sum of total_price) of the client that day.';
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP VIEW marts.client_day;
CREATE FUNCTION pg_temp.day_dates(days integer[]) RETURNS date[]
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT coalesce(array_agg(date '2000-01-01' + d ORDER BY i), '{}')
    FROM unnest(days) WITH ORDINALITY AS u(d, i)
$fn$;
ALTER TABLE marts.client_stats
    ALTER days TYPE date[] USING pg_temp.day_dates(days),
    ALTER revenues TYPE numeric[] USING revenues::numeric[];
CREATE VIEW marts.client_day AS
SELECT c.client_id, u.day, u.revenue
FROM marts.client_stats c, unnest(c.days, c.revenues) AS u(day, revenue);
-- +goose StatementEnd
