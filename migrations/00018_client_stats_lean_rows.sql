-- +goose Up
-- +goose StatementBegin
-- After a backfill the first client update writes one marts.client_stats
-- row per client (860,000 for a year of the real API's data) by COPY, and
-- the server's parsing of the typed columns was still half of that write:
-- a date_in for each of the first and last purchase days and an array_in
-- for the purchase days (docs/benchmarks.md, "Fifth round"). So:
--   * first_purchase_date and last_purchase_date become first_day and
--     last_day, day numbers (days since 2000-01-01, as days), which the
--     server parses as plain integers;
--   * days holds the text of its integer[] literal, as revenues holds the
--     text of its numeric[] one: the statements that read the days of a
--     client parse them there (a day's few thousand touched clients, not
--     all of them).
-- The views over client_stats keep their columns and types: they turn the
-- day numbers back into dates.
DROP VIEW marts.client_rfm, marts.client_rfm_scores, marts.client_first_purchase, marts.client_day;

ALTER TABLE marts.client_stats RENAME first_purchase_date TO first_day;
ALTER TABLE marts.client_stats RENAME last_purchase_date TO last_day;
ALTER TABLE marts.client_stats
    ALTER first_day TYPE integer USING first_day - date '2000-01-01',
    ALTER last_day TYPE integer USING last_day - date '2000-01-01',
    ALTER days TYPE text USING days::text;
COMMENT ON COLUMN marts.client_stats.first_day IS 'Day of the client''s first purchase, as a day number (days since 2000-01-01).';
COMMENT ON COLUMN marts.client_stats.last_day IS 'Day of the client''s latest purchase, as a day number (days since 2000-01-01).';
COMMENT ON COLUMN marts.client_stats.days IS 'The client''s purchase days as day numbers (days since 2000-01-01), ascending: the text of an integer[] literal (read it as days::integer[]; its cardinality is frequency).';
COMMENT ON TABLE marts.client_stats IS 'Internal helper, grain: client. First and last purchase day, purchase days and revenue over all loaded data, and the purchase days and their revenues; rewritten for the clients of the days a pass changed. Base of client_rfm, client_first_purchase and client_day.';

CREATE VIEW marts.client_day AS
SELECT c.client_id, date '2000-01-01' + u.day AS day, u.revenue
FROM marts.client_stats c, unnest(c.days::integer[], c.revenues::numeric[]) AS u(day, revenue);
COMMENT ON VIEW marts.client_day IS 'Internal helper, grain: client and day with a purchase: the days and revenues of marts.client_stats, one row each.';
COMMENT ON COLUMN marts.client_day.client_id IS 'Client id.';
COMMENT ON COLUMN marts.client_day.day IS 'Business day of the purchases.';
COMMENT ON COLUMN marts.client_day.revenue IS 'Revenue (sum of total_price) of the client that day.';

CREATE VIEW marts.client_first_purchase AS
SELECT client_id, date '2000-01-01' + first_day AS first_purchase_date,
       date_trunc('month', (date '2000-01-01' + first_day)::timestamp)::date AS cohort_month
FROM marts.client_stats;
COMMENT ON VIEW marts.client_first_purchase IS 'Helper, grain: client. The day of each client''s first purchase ever loaded, and its cohort month; client_rfm has the same dates for dashboards.';
COMMENT ON COLUMN marts.client_first_purchase.client_id IS 'Client id.';
COMMENT ON COLUMN marts.client_first_purchase.first_purchase_date IS 'Business day of the client''s first purchase line.';
COMMENT ON COLUMN marts.client_first_purchase.cohort_month IS 'First day of the calendar month of the first purchase: the client''s cohort.';

CREATE VIEW marts.client_rfm_scores AS
WITH s AS (
    SELECT c.client_id, date '2000-01-01' + c.first_day AS first_purchase_date, date '2000-01-01' + c.last_day AS last_purchase_date,
           c.frequency, c.monetary,
           (1 + (c.last_day > t.r_2 - date '2000-01-01')::int + (c.last_day > t.r_3 - date '2000-01-01')::int)::smallint AS r_score,
           (1 + (c.frequency > t.f_2)::int + (c.frequency > t.f_3)::int)::smallint                                       AS f_score,
           (1 + (c.monetary > t.m_2)::int + (c.monetary > t.m_3)::int)::smallint                                         AS m_score
    FROM marts.client_stats c
    CROSS JOIN marts.rfm_thresholds t
)
SELECT client_id, first_purchase_date, last_purchase_date, frequency, monetary,
       r_score, f_score, m_score,
       r_score::text || f_score::text || m_score::text AS rfm_code,
       CASE
           WHEN r_score = 3 AND f_score = 3 THEN 'champions'
           WHEN r_score = 3 AND f_score = 2 THEN 'potential_loyalists'
           WHEN r_score = 3 AND f_score = 1 THEN 'new'
           WHEN r_score = 2 AND f_score = 3 THEN 'loyal'
           WHEN r_score = 2 AND f_score = 2 THEN 'need_attention'
           WHEN r_score = 2 AND f_score = 1 THEN 'about_to_sleep'
           WHEN r_score = 1 AND f_score = 3 THEN 'at_risk'
           WHEN r_score = 1 AND f_score = 2 THEN 'hibernating'
           ELSE 'lost'
       END AS segment
FROM s;
COMMENT ON VIEW marts.client_rfm_scores IS 'Grain: client. marts.client_rfm without the reference day and recency; query marts.client_rfm.';
COMMENT ON COLUMN marts.client_rfm_scores.client_id IS 'Client id.';
COMMENT ON COLUMN marts.client_rfm_scores.first_purchase_date IS 'Day of the client''s first purchase.';
COMMENT ON COLUMN marts.client_rfm_scores.last_purchase_date IS 'Day of the client''s latest purchase.';
COMMENT ON COLUMN marts.client_rfm_scores.frequency IS 'Distinct days with a purchase.';
COMMENT ON COLUMN marts.client_rfm_scores.monetary IS 'Revenue of the client over all loaded data.';
COMMENT ON COLUMN marts.client_rfm_scores.r_score IS 'Recency tercile 1..3 (3 = most recent).';
COMMENT ON COLUMN marts.client_rfm_scores.f_score IS 'Frequency tercile 1..3 (3 = most purchase days).';
COMMENT ON COLUMN marts.client_rfm_scores.m_score IS 'Monetary tercile 1..3 (3 = highest revenue).';
COMMENT ON COLUMN marts.client_rfm_scores.rfm_code IS 'Three digits r_score f_score m_score.';
COMMENT ON COLUMN marts.client_rfm_scores.segment IS 'Named segment from (r_score, f_score), see marts.client_rfm.';

CREATE VIEW marts.client_rfm AS
SELECT s.client_id, a.as_of, s.first_purchase_date, s.last_purchase_date,
       a.as_of - s.last_purchase_date AS recency_days,
       s.frequency, s.monetary, s.r_score, s.f_score, s.m_score, s.rfm_code, s.segment
FROM marts.client_rfm_scores s
CROSS JOIN (SELECT max(day) AS as_of FROM marts.daily_sales) a;
COMMENT ON VIEW marts.client_rfm IS 'Grain: client, as of the newest loaded day. RFM with tercile scores 1..3 (3 = best; score = 1 + floor(3 * share of clients strictly worse), ties share a score). Segment from R and F: 33 champions, 32 potential_loyalists, 31 new, 23 loyal, 22 need_attention, 21 about_to_sleep, 13 at_risk, 12 hibernating, 11 lost; M refines within a segment.';
COMMENT ON COLUMN marts.client_rfm.client_id IS 'Client id.';
COMMENT ON COLUMN marts.client_rfm.as_of IS 'Newest loaded day: the reference day of recency.';
COMMENT ON COLUMN marts.client_rfm.first_purchase_date IS 'Day of the client''s first purchase.';
COMMENT ON COLUMN marts.client_rfm.last_purchase_date IS 'Day of the client''s latest purchase.';
COMMENT ON COLUMN marts.client_rfm.recency_days IS 'Days from last_purchase_date to as_of (0 = bought on the newest day).';
COMMENT ON COLUMN marts.client_rfm.frequency IS 'Distinct days with a purchase.';
COMMENT ON COLUMN marts.client_rfm.monetary IS 'Revenue of the client over all loaded data (sum of total_price).';
COMMENT ON COLUMN marts.client_rfm.r_score IS 'Recency tercile: 3 = most recent third, 1 = least recent (ties share a score).';
COMMENT ON COLUMN marts.client_rfm.f_score IS 'Frequency tercile: 3 = most purchase days; one-time buyers, when they are more than a third of clients, all get 1.';
COMMENT ON COLUMN marts.client_rfm.m_score IS 'Monetary tercile: 3 = highest revenue.';
COMMENT ON COLUMN marts.client_rfm.rfm_code IS 'r_score, f_score and m_score as three digits, e.g. 333.';
COMMENT ON COLUMN marts.client_rfm.segment IS 'Named segment from (r_score, f_score): 33 champions, 32 potential_loyalists, 31 new, 23 loyal, 22 need_attention, 21 about_to_sleep, 13 at_risk, 12 hibernating, 11 lost.';
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP VIEW marts.client_rfm, marts.client_rfm_scores, marts.client_first_purchase, marts.client_day;
ALTER TABLE marts.client_stats
    ALTER first_day TYPE date USING date '2000-01-01' + first_day,
    ALTER last_day TYPE date USING date '2000-01-01' + last_day,
    ALTER days TYPE integer[] USING days::integer[];
ALTER TABLE marts.client_stats RENAME first_day TO first_purchase_date;
ALTER TABLE marts.client_stats RENAME last_day TO last_purchase_date;
CREATE VIEW marts.client_day AS
SELECT c.client_id, date '2000-01-01' + u.day AS day, u.revenue
FROM marts.client_stats c, unnest(c.days, c.revenues::numeric[]) AS u(day, revenue);
CREATE VIEW marts.client_first_purchase AS
SELECT client_id, first_purchase_date, date_trunc('month', first_purchase_date)::date AS cohort_month
FROM marts.client_stats;
CREATE VIEW marts.client_rfm_scores AS
WITH s AS (
    SELECT c.client_id, c.first_purchase_date, c.last_purchase_date, c.frequency, c.monetary,
           (1 + (c.last_purchase_date > t.r_2)::int + (c.last_purchase_date > t.r_3)::int)::smallint AS r_score,
           (1 + (c.frequency > t.f_2)::int + (c.frequency > t.f_3)::int)::smallint                   AS f_score,
           (1 + (c.monetary > t.m_2)::int + (c.monetary > t.m_3)::int)::smallint                     AS m_score
    FROM marts.client_stats c
    CROSS JOIN marts.rfm_thresholds t
)
SELECT client_id, first_purchase_date, last_purchase_date, frequency, monetary,
       r_score, f_score, m_score,
       r_score::text || f_score::text || m_score::text AS rfm_code,
       CASE
           WHEN r_score = 3 AND f_score = 3 THEN 'champions'
           WHEN r_score = 3 AND f_score = 2 THEN 'potential_loyalists'
           WHEN r_score = 3 AND f_score = 1 THEN 'new'
           WHEN r_score = 2 AND f_score = 3 THEN 'loyal'
           WHEN r_score = 2 AND f_score = 2 THEN 'need_attention'
           WHEN r_score = 2 AND f_score = 1 THEN 'about_to_sleep'
           WHEN r_score = 1 AND f_score = 3 THEN 'at_risk'
           WHEN r_score = 1 AND f_score = 2 THEN 'hibernating'
           ELSE 'lost'
       END AS segment
FROM s;
CREATE VIEW marts.client_rfm AS
SELECT s.client_id, a.as_of, s.first_purchase_date, s.last_purchase_date,
       a.as_of - s.last_purchase_date AS recency_days,
       s.frequency, s.monetary, s.r_score, s.f_score, s.m_score, s.rfm_code, s.segment
FROM marts.client_rfm_scores s
CROSS JOIN (SELECT max(day) AS as_of FROM marts.daily_sales) a;
-- +goose StatementEnd
