-- +goose Up
-- +goose StatementBegin
-- Analytics marts over marketplace.purchases and marketplace.day_loads.
--
-- Every aggregate mart is a materialized view created WITH NO DATA, so this
-- migration is instant on a database that already holds years of lines;
-- internal/marts.Refresh populates them (plain REFRESH the first time,
-- REFRESH ... CONCURRENTLY afterwards, which is why each has a unique index).
-- The load-health marts are plain views: they read the tiny day_loads table
-- and must show the state of loads as it is, not as of the last refresh.
CREATE SCHEMA IF NOT EXISTS marts;
COMMENT ON SCHEMA marts IS 'Analytics marts for Metabase and SQL users, derived from schema marketplace and refreshed by marketplace-etl at the end of every successful run and backfill (see marts.refresh_state).';

-- ---------------------------------------------------------------- settings
CREATE TABLE marts.abc_xyz_settings (
    id        boolean      PRIMARY KEY DEFAULT true CHECK (id),
    abc_a_max numeric(6,4) NOT NULL DEFAULT 0.80,
    abc_b_max numeric(6,4) NOT NULL DEFAULT 0.95,
    xyz_x_max numeric(8,4) NOT NULL DEFAULT 0.10,
    xyz_y_max numeric(8,4) NOT NULL DEFAULT 0.25,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (0 <= abc_a_max AND abc_a_max <= abc_b_max AND abc_b_max <= 1),
    CHECK (0 <= xyz_x_max AND xyz_x_max <= xyz_y_max)
);
INSERT INTO marts.abc_xyz_settings DEFAULT VALUES;
COMMENT ON TABLE marts.abc_xyz_settings IS 'Thresholds of the ABC/XYZ classification (exactly one row). An analyst may UPDATE them at any time: marts.product_abc_xyz is a view and applies them immediately, no migration or refresh needed.';
COMMENT ON COLUMN marts.abc_xyz_settings.id IS 'Always true: makes this a single-row table.';
COMMENT ON COLUMN marts.abc_xyz_settings.abc_a_max IS 'Class A: products whose cumulative revenue share (descending revenue order) is at most this value. Default 0.80.';
COMMENT ON COLUMN marts.abc_xyz_settings.abc_b_max IS 'Class B: cumulative revenue share above abc_a_max and at most this value; C is the rest. Default 0.95.';
COMMENT ON COLUMN marts.abc_xyz_settings.xyz_x_max IS 'Class X: coefficient of variation of monthly units at most this value. Default 0.10.';
COMMENT ON COLUMN marts.abc_xyz_settings.xyz_y_max IS 'Class Y: coefficient of variation above xyz_x_max and at most this value; Z is the rest. Default 0.25.';
COMMENT ON COLUMN marts.abc_xyz_settings.updated_at IS 'When the thresholds were last set (informational; set it in your UPDATE).';

-- ------------------------------------------------------------ refresh log
CREATE TABLE marts.refresh_state (
    mart        text        PRIMARY KEY,
    status      text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    duration_ms bigint,
    error       text
);
COMMENT ON TABLE marts.refresh_state IS 'Outcome of the latest refresh of each materialized mart, and of the whole refresh (mart = ''all''): how fresh the marts are.';
COMMENT ON COLUMN marts.refresh_state.mart IS 'Qualified name of the materialized view, or ''all'' for a whole marts.Refresh call.';
COMMENT ON COLUMN marts.refresh_state.status IS 'running, succeeded or failed.';
COMMENT ON COLUMN marts.refresh_state.started_at IS 'Database time the refresh started; the mart reflects every load committed before it.';
COMMENT ON COLUMN marts.refresh_state.finished_at IS 'Database time the refresh ended.';
COMMENT ON COLUMN marts.refresh_state.duration_ms IS 'How long the refresh took, in milliseconds.';
COMMENT ON COLUMN marts.refresh_state.error IS 'Error of a failed refresh; null otherwise.';

-- ----------------------------------------------------------------- helpers
-- One row per client and day: the shared base of the client marts (first
-- purchase, activity, RFM, cohorts), so that the purchase lines are read and
-- grouped by client once per refresh instead of four times.
CREATE MATERIALIZED VIEW marts.client_day AS
SELECT client_id,
       purchase_date           AS day,
       count(*)                AS lines,
       sum(quantity)::bigint   AS units,
       sum(total_price)        AS revenue
FROM marketplace.purchases
GROUP BY client_id, purchase_date
WITH NO DATA;
COMMENT ON MATERIALIZED VIEW marts.client_day IS 'Internal helper, grain: client and day. Base of the client marts; refreshed without CONCURRENTLY (it is large and only the refresh reads it), so do not build dashboards on it.';
COMMENT ON COLUMN marts.client_day.client_id IS 'Client id.';
COMMENT ON COLUMN marts.client_day.day IS 'Business day of the purchases.';
COMMENT ON COLUMN marts.client_day.lines IS 'Purchase lines of the client that day.';
COMMENT ON COLUMN marts.client_day.units IS 'Units (sum of quantity) of the client that day.';
COMMENT ON COLUMN marts.client_day.revenue IS 'Revenue (sum of total_price) of the client that day.';

CREATE MATERIALIZED VIEW marts.client_first_purchase AS
SELECT client_id,
       min(day)                               AS first_purchase_date,
       date_trunc('month', min(day))::date    AS cohort_month
FROM marts.client_day
GROUP BY client_id
WITH NO DATA;
CREATE UNIQUE INDEX ON marts.client_first_purchase (client_id);
CREATE INDEX ON marts.client_first_purchase (first_purchase_date);
COMMENT ON MATERIALIZED VIEW marts.client_first_purchase IS 'Helper, grain: client. The day of each client''s first purchase ever loaded, and its cohort month. Refreshed without CONCURRENTLY (readers wait during its refresh, a few seconds); client_rfm has the same dates for dashboards.';
COMMENT ON COLUMN marts.client_first_purchase.client_id IS 'Client id.';
COMMENT ON COLUMN marts.client_first_purchase.first_purchase_date IS 'Business day of the client''s first purchase line.';
COMMENT ON COLUMN marts.client_first_purchase.cohort_month IS 'First day of the calendar month of the first purchase: the client''s cohort.';

-- ------------------------------------------------------------- daily sales
CREATE MATERIALIZED VIEW marts.daily_sales AS
WITH agg AS (
    SELECT purchase_date                          AS day,
           count(*)                               AS lines,
           sum(quantity)::bigint                  AS units,
           sum(total_price)                       AS revenue,
           sum(quantity * price_per_item)         AS gross_revenue,
           sum(quantity * discount_per_item)      AS discount,
           count(DISTINCT client_id)              AS clients,
           count(DISTINCT product_id)             AS products
    FROM marketplace.purchases
    GROUP BY purchase_date
), days AS (
    -- A day loaded with no lines is a real zero, not a gap: keep it.
    SELECT day FROM agg
    UNION
    SELECT purchase_date FROM marketplace.day_loads WHERE status = 'loaded'
)
SELECT d.day,
       coalesce(a.lines, 0)                      AS lines,
       coalesce(a.units, 0)                      AS units,
       coalesce(a.revenue, 0)                    AS revenue,
       coalesce(a.gross_revenue, 0)              AS gross_revenue,
       coalesce(a.discount, 0)                   AS discount,
       a.discount / nullif(a.gross_revenue, 0)   AS discount_share,
       coalesce(a.clients, 0)                    AS clients,
       coalesce(a.products, 0)                   AS products,
       a.revenue / nullif(a.lines, 0)            AS avg_line_value
FROM days d
LEFT JOIN agg a USING (day)
WITH NO DATA;
CREATE UNIQUE INDEX ON marts.daily_sales (day);
COMMENT ON MATERIALIZED VIEW marts.daily_sales IS 'Grain: business day. Sales KPIs of every day that is loaded (a loaded day without lines has zeros) or has lines. Days that failed or were never loaded are absent: see marts.load_health.';
COMMENT ON COLUMN marts.daily_sales.day IS 'Business day (Europe/Moscow calendar date).';
COMMENT ON COLUMN marts.daily_sales.lines IS 'Purchase lines (quantity > 0; free lines included).';
COMMENT ON COLUMN marts.daily_sales.units IS 'Units sold: sum of quantity.';
COMMENT ON COLUMN marts.daily_sales.revenue IS 'Revenue: sum of total_price (after discount).';
COMMENT ON COLUMN marts.daily_sales.gross_revenue IS 'Revenue before discount: sum of quantity * price_per_item.';
COMMENT ON COLUMN marts.daily_sales.discount IS 'Discount amount: sum of quantity * discount_per_item (= gross_revenue - revenue).';
COMMENT ON COLUMN marts.daily_sales.discount_share IS 'discount / gross_revenue (0..1); null when gross_revenue is 0.';
COMMENT ON COLUMN marts.daily_sales.clients IS 'Distinct clients with a line that day.';
COMMENT ON COLUMN marts.daily_sales.products IS 'Distinct products sold that day.';
COMMENT ON COLUMN marts.daily_sales.avg_line_value IS 'revenue / lines; null on a day without lines.';

-- ----------------------------------------------------------- monthly sales
CREATE MATERIALIZED VIEW marts.monthly_sales AS
WITH agg AS (
    SELECT date_trunc('month', purchase_date)::date AS month,
           count(*)                               AS lines,
           sum(quantity)::bigint                  AS units,
           sum(total_price)                       AS revenue,
           sum(quantity * price_per_item)         AS gross_revenue,
           sum(quantity * discount_per_item)      AS discount,
           count(DISTINCT client_id)              AS clients,
           count(DISTINCT product_id)             AS products
    FROM marketplace.purchases
    GROUP BY 1
), months AS (
    SELECT date_trunc('month', day)::date AS month, count(*) AS days_loaded
    FROM marts.daily_sales
    GROUP BY 1
), m AS (
    SELECT ms.month, ms.days_loaded,
           coalesce(a.lines, 0)                      AS lines,
           coalesce(a.units, 0)                      AS units,
           coalesce(a.revenue, 0)                    AS revenue,
           coalesce(a.gross_revenue, 0)              AS gross_revenue,
           coalesce(a.discount, 0)                   AS discount,
           a.discount / nullif(a.gross_revenue, 0)   AS discount_share,
           coalesce(a.clients, 0)                    AS clients,
           coalesce(a.products, 0)                   AS products,
           a.revenue / nullif(a.lines, 0)            AS avg_line_value
    FROM months ms
    LEFT JOIN agg a USING (month)
)
SELECT month, lines, units, revenue, gross_revenue, discount, discount_share, clients, products, avg_line_value,
       prev_revenue,
       revenue - prev_revenue                   AS revenue_mom_change,
       (revenue - prev_revenue) / nullif(prev_revenue, 0) AS revenue_mom_change_share,
       days_loaded
FROM (
    -- The change is against the previous calendar month only: a month
    -- without any loaded day leaves the next one without a comparison.
    SELECT m.*,
           CASE WHEN lag(month) OVER (ORDER BY month) = (month - interval '1 month')::date
                THEN lag(revenue) OVER (ORDER BY month) END AS prev_revenue
    FROM m
) x
WITH NO DATA;
CREATE UNIQUE INDEX ON marts.monthly_sales (month);
COMMENT ON MATERIALIZED VIEW marts.monthly_sales IS 'Grain: calendar month. The daily_sales KPIs per month (distinct clients and products counted over the month, not summed), plus month-over-month revenue change. The newest month is usually incomplete: see days_loaded.';
COMMENT ON COLUMN marts.monthly_sales.month IS 'First day of the calendar month.';
COMMENT ON COLUMN marts.monthly_sales.lines IS 'Purchase lines in the month.';
COMMENT ON COLUMN marts.monthly_sales.units IS 'Units sold: sum of quantity.';
COMMENT ON COLUMN marts.monthly_sales.revenue IS 'Revenue: sum of total_price.';
COMMENT ON COLUMN marts.monthly_sales.gross_revenue IS 'Revenue before discount: sum of quantity * price_per_item.';
COMMENT ON COLUMN marts.monthly_sales.discount IS 'Discount amount: sum of quantity * discount_per_item.';
COMMENT ON COLUMN marts.monthly_sales.discount_share IS 'discount / gross_revenue; null when gross_revenue is 0.';
COMMENT ON COLUMN marts.monthly_sales.clients IS 'Distinct clients with a line in the month.';
COMMENT ON COLUMN marts.monthly_sales.products IS 'Distinct products sold in the month.';
COMMENT ON COLUMN marts.monthly_sales.avg_line_value IS 'revenue / lines; null for a month without lines.';
COMMENT ON COLUMN marts.monthly_sales.prev_revenue IS 'Revenue of the previous calendar month; null when that month has no loaded day.';
COMMENT ON COLUMN marts.monthly_sales.revenue_mom_change IS 'revenue - prev_revenue (month-over-month change); null without a previous month.';
COMMENT ON COLUMN marts.monthly_sales.revenue_mom_change_share IS '(revenue - prev_revenue) / prev_revenue, e.g. 0.12 = +12 %; null without a previous month or when it had no revenue.';
COMMENT ON COLUMN marts.monthly_sales.days_loaded IS 'Days of the month present in daily_sales (loaded or with lines): compare with the month length to spot a partial month.';

-- --------------------------------------------------------- sales by gender
CREATE MATERIALIZED VIEW marts.sales_by_gender AS
SELECT purchase_date                          AS day,
       gender::text                           AS gender,
       count(*)                               AS lines,
       sum(quantity)::bigint                  AS units,
       sum(total_price)                       AS revenue,
       sum(quantity * price_per_item)         AS gross_revenue,
       sum(quantity * discount_per_item)      AS discount,
       count(DISTINCT client_id)              AS clients,
       sum(total_price) / count(*)            AS avg_line_value
FROM marketplace.purchases
GROUP BY purchase_date, gender
WITH NO DATA;
CREATE UNIQUE INDEX ON marts.sales_by_gender (day, gender);
COMMENT ON MATERIALIZED VIEW marts.sales_by_gender IS 'Grain: business day and gender (only pairs with lines). Filter by day and sum for any period; do not sum clients across days (a client buying on two days counts twice).';
COMMENT ON COLUMN marts.sales_by_gender.day IS 'Business day.';
COMMENT ON COLUMN marts.sales_by_gender.gender IS 'Gender of the line as sent by the API: M or F.';
COMMENT ON COLUMN marts.sales_by_gender.lines IS 'Purchase lines.';
COMMENT ON COLUMN marts.sales_by_gender.units IS 'Units: sum of quantity.';
COMMENT ON COLUMN marts.sales_by_gender.revenue IS 'Revenue: sum of total_price.';
COMMENT ON COLUMN marts.sales_by_gender.gross_revenue IS 'Revenue before discount: sum of quantity * price_per_item.';
COMMENT ON COLUMN marts.sales_by_gender.discount IS 'Discount amount: sum of quantity * discount_per_item.';
COMMENT ON COLUMN marts.sales_by_gender.clients IS 'Distinct clients that day with that gender.';
COMMENT ON COLUMN marts.sales_by_gender.avg_line_value IS 'revenue / lines.';

-- ----------------------------------------------------------- sales by hour
CREATE MATERIALIZED VIEW marts.sales_by_hour AS
SELECT purchase_date                          AS day,
       (seconds_from_midnight / 3600)::smallint AS hour,
       count(*)                               AS lines,
       sum(quantity)::bigint                  AS units,
       sum(total_price)                       AS revenue,
       count(DISTINCT client_id)              AS clients
FROM marketplace.purchases
GROUP BY purchase_date, seconds_from_midnight / 3600
WITH NO DATA;
CREATE UNIQUE INDEX ON marts.sales_by_hour (day, hour);
COMMENT ON MATERIALIZED VIEW marts.sales_by_hour IS 'Grain: business day and hour of day (only pairs with lines), so a dashboard can filter a date range and then group by hour.';
COMMENT ON COLUMN marts.sales_by_hour.day IS 'Business day.';
COMMENT ON COLUMN marts.sales_by_hour.hour IS 'Hour of day 0..23 in the business time zone: seconds_from_midnight / 3600.';
COMMENT ON COLUMN marts.sales_by_hour.lines IS 'Purchase lines in that hour.';
COMMENT ON COLUMN marts.sales_by_hour.units IS 'Units: sum of quantity.';
COMMENT ON COLUMN marts.sales_by_hour.revenue IS 'Revenue: sum of total_price.';
COMMENT ON COLUMN marts.sales_by_hour.clients IS 'Distinct clients in that hour of that day.';

-- ------------------------------------------------- client activity per day
CREATE MATERIALIZED VIEW marts.client_activity_daily AS
WITH cd AS (
    SELECT client_id, day, lag(day) OVER (PARTITION BY client_id ORDER BY day) AS prev_day
    FROM marts.client_day
), ev AS (
    -- Rolling distinct counts without a self-join: a client is in the N-day
    -- window of day x when it bought on some d in [x-N+1, x], i.e. x lies in
    -- [d, d+N). Each purchase day adds the part of that interval not already
    -- covered by the client's previous purchase day p: [max(d, p+N), d+N).
    -- The intervals of one client are then disjoint, so a running sum of
    -- +1/-1 events counts distinct clients exactly.
    SELECT e.day, sum(e.d7) AS d7, sum(e.d30) AS d30
    FROM cd
    CROSS JOIN LATERAL (VALUES
        (greatest(cd.day, cd.prev_day + 7), 1, 0),
        (cd.day + 7, -1, 0),
        (greatest(cd.day, cd.prev_day + 30), 0, 1),
        (cd.day + 30, 0, -1)) AS e(day, d7, d30)
    GROUP BY e.day
), calendar AS (
    SELECT g::date AS day
    FROM (SELECT min(day) AS lo, max(day) AS hi FROM marts.daily_sales) b,
         generate_series(b.lo, b.hi, interval '1 day') AS g
), rolling AS (
    SELECT c.day,
           sum(coalesce(ev.d7, 0)) OVER (ORDER BY c.day)  AS active_clients_7d,
           sum(coalesce(ev.d30, 0)) OVER (ORDER BY c.day) AS active_clients_30d
    FROM calendar c
    LEFT JOIN ev USING (day)
), dau AS (
    SELECT day, count(*) AS active_clients FROM marts.client_day GROUP BY day
), fresh AS (
    SELECT first_purchase_date AS day, count(*) AS new_clients
    FROM marts.client_first_purchase GROUP BY first_purchase_date
)
SELECT s.day,
       coalesce(dau.active_clients, 0)                                     AS active_clients,
       r.active_clients_7d::bigint                                         AS active_clients_7d,
       r.active_clients_30d::bigint                                        AS active_clients_30d,
       coalesce(fresh.new_clients, 0)                                      AS new_clients,
       coalesce(dau.active_clients, 0) - coalesce(fresh.new_clients, 0)    AS returning_clients
FROM marts.daily_sales s
JOIN rolling r USING (day)
LEFT JOIN dau USING (day)
LEFT JOIN fresh USING (day)
WITH NO DATA;
CREATE UNIQUE INDEX ON marts.client_activity_daily (day);
COMMENT ON MATERIALIZED VIEW marts.client_activity_daily IS 'Grain: business day (the days of daily_sales). DAU, rolling 7-day (WAU) and 30-day (MAU) distinct active clients, new and returning clients. Windows are calendar days ending on the day, inclusive.';
COMMENT ON COLUMN marts.client_activity_daily.day IS 'Business day.';
COMMENT ON COLUMN marts.client_activity_daily.active_clients IS 'DAU: distinct clients with a line that day.';
COMMENT ON COLUMN marts.client_activity_daily.active_clients_7d IS 'WAU: distinct clients with a line in the 7 days ending on day (day-6 .. day).';
COMMENT ON COLUMN marts.client_activity_daily.active_clients_30d IS 'MAU: distinct clients with a line in the 30 days ending on day (day-29 .. day).';
COMMENT ON COLUMN marts.client_activity_daily.new_clients IS 'Clients whose first purchase ever (in the loaded data) is that day.';
COMMENT ON COLUMN marts.client_activity_daily.returning_clients IS 'Active clients that day who had bought on an earlier day: active_clients - new_clients.';

-- ------------------------------------------------------------ ABC / XYZ
CREATE MATERIALIZED VIEW marts.product_sales_12m AS
WITH bounds AS (
    -- The trailing 12 complete calendar months before the newest loaded day
    -- (its own month counts only when that day is the month's last), never
    -- starting before the first complete month of loaded data: months
    -- before the data began would look like months without sales.
    SELECT greatest((date_trunc('month', max(day) + 1) - interval '12 months')::date,
                    (date_trunc('month', min(day) - 1) + interval '1 month')::date) AS period_start,
           date_trunc('month', max(day) + 1)::date                                   AS period_end_excl
    FROM marts.daily_sales
), months AS (
    SELECT g::date AS month
    FROM bounds b, generate_series(b.period_start, b.period_end_excl - 1, interval '1 month') AS g
), pm AS (
    SELECT p.product_id,
           date_trunc('month', p.purchase_date)::date AS month,
           sum(p.quantity)::bigint                    AS units,
           sum(p.total_price)                         AS revenue
    FROM marketplace.purchases p, bounds b
    WHERE p.purchase_date >= b.period_start AND p.purchase_date < b.period_end_excl
    GROUP BY 1, 2
), prod AS (
    SELECT product_id, sum(units)::bigint AS units, sum(revenue) AS revenue
    FROM pm GROUP BY product_id
), variation AS (
    -- Months without a sale count as 0 units: demand variability includes gaps.
    SELECT pr.product_id,
           stddev_pop(coalesce(pm.units, 0)) / avg(coalesce(pm.units, 0)) AS cv,
           count(*) AS months
    FROM prod pr
    CROSS JOIN months m
    LEFT JOIN pm ON pm.product_id = pr.product_id AND pm.month = m.month
    GROUP BY pr.product_id
)
SELECT pr.product_id,
       pr.revenue,
       pr.units,
       pr.revenue / nullif(sum(pr.revenue) OVER (), 0) AS revenue_share,
       -- Default window frame (RANGE ... CURRENT ROW) includes peers: products
       -- with equal revenue share one cumulative share and so one class,
       -- whatever their ids.
       sum(pr.revenue) OVER (ORDER BY pr.revenue DESC) / nullif(sum(pr.revenue) OVER (), 0) AS cumulative_share,
       v.cv,
       v.months::integer AS months,
       b.period_start,
       b.period_end_excl - 1 AS period_end
FROM prod pr
JOIN variation v USING (product_id)
CROSS JOIN bounds b
WITH NO DATA;
CREATE UNIQUE INDEX ON marts.product_sales_12m (product_id);
COMMENT ON MATERIALIZED VIEW marts.product_sales_12m IS 'Grain: product sold in the ABC/XYZ period. Revenue, units, shares and variation over the trailing 12 complete months; marts.product_abc_xyz adds the classes from marts.abc_xyz_settings.';
COMMENT ON COLUMN marts.product_sales_12m.product_id IS 'Product id.';
COMMENT ON COLUMN marts.product_sales_12m.revenue IS 'Revenue (sum of total_price) in the period.';
COMMENT ON COLUMN marts.product_sales_12m.units IS 'Units (sum of quantity) in the period.';
COMMENT ON COLUMN marts.product_sales_12m.revenue_share IS 'revenue / revenue of all products in the period.';
COMMENT ON COLUMN marts.product_sales_12m.cumulative_share IS 'Share of period revenue of all products with revenue >= this one (descending revenue order; ties share one value).';
COMMENT ON COLUMN marts.product_sales_12m.cv IS 'Coefficient of variation of monthly units over the period''s months (population standard deviation / mean, months without sales as 0).';
COMMENT ON COLUMN marts.product_sales_12m.months IS 'Number of calendar months in the period (12 once a year of data is loaded).';
COMMENT ON COLUMN marts.product_sales_12m.period_start IS 'First day of the period.';
COMMENT ON COLUMN marts.product_sales_12m.period_end IS 'Last day of the period (end of the last complete month).';

CREATE VIEW marts.product_abc_xyz AS
WITH s AS (
    -- Defaults again in case an analyst deleted the settings row.
    SELECT coalesce(max(abc_a_max), 0.80) AS a_max, coalesce(max(abc_b_max), 0.95) AS b_max,
           coalesce(max(xyz_x_max), 0.10) AS x_max, coalesce(max(xyz_y_max), 0.25) AS y_max
    FROM marts.abc_xyz_settings
), c AS (
    SELECT p.*,
           CASE WHEN p.cumulative_share <= s.a_max THEN 'A'
                WHEN p.cumulative_share <= s.b_max THEN 'B'
                ELSE 'C' END AS abc_class,
           CASE WHEN p.cv <= s.x_max THEN 'X'
                WHEN p.cv <= s.y_max THEN 'Y'
                ELSE 'Z' END AS xyz_class
    FROM marts.product_sales_12m p CROSS JOIN s
)
SELECT product_id, revenue, units, revenue_share, cumulative_share, abc_class, cv, xyz_class,
       abc_class || xyz_class AS abc_xyz_class, months, period_start, period_end
FROM c;
COMMENT ON VIEW marts.product_abc_xyz IS 'Grain: product sold in the trailing 12 complete months before the newest loaded day. ABC by cumulative revenue share in descending revenue order, XYZ by coefficient of variation of monthly units, thresholds from marts.abc_xyz_settings (applied live).';
COMMENT ON COLUMN marts.product_abc_xyz.product_id IS 'Product id.';
COMMENT ON COLUMN marts.product_abc_xyz.revenue IS 'Revenue (sum of total_price) in the period.';
COMMENT ON COLUMN marts.product_abc_xyz.units IS 'Units (sum of quantity) in the period.';
COMMENT ON COLUMN marts.product_abc_xyz.revenue_share IS 'revenue / revenue of all products in the period.';
COMMENT ON COLUMN marts.product_abc_xyz.cumulative_share IS 'Share of period revenue of all products with revenue >= this one (descending revenue order; ties share one value).';
COMMENT ON COLUMN marts.product_abc_xyz.abc_class IS 'A: cumulative_share <= abc_a_max (0.80); B: <= abc_b_max (0.95); C: the rest (also free-only products).';
COMMENT ON COLUMN marts.product_abc_xyz.cv IS 'Coefficient of variation of monthly units (population stddev / mean, months without sales as 0).';
COMMENT ON COLUMN marts.product_abc_xyz.xyz_class IS 'X: cv <= xyz_x_max (0.10); Y: cv <= xyz_y_max (0.25); Z: above.';
COMMENT ON COLUMN marts.product_abc_xyz.abc_xyz_class IS 'abc_class || xyz_class: AX .. CZ.';
COMMENT ON COLUMN marts.product_abc_xyz.months IS 'Number of calendar months in the period.';
COMMENT ON COLUMN marts.product_abc_xyz.period_start IS 'First day of the period.';
COMMENT ON COLUMN marts.product_abc_xyz.period_end IS 'Last day of the period.';

-- -------------------------------------------------------------------- RFM
-- The scores do not depend on the reference day (recency ranks are last
-- purchase date ranks), so the materialized part leaves it out: a daily
-- refresh then rewrites only the clients that bought or changed score,
-- instead of every client whose recency grew by a day. The view adds it.
CREATE MATERIALIZED VIEW marts.client_rfm_scores AS
WITH c AS (
    SELECT client_id, min(day) AS first_purchase_date, max(day) AS last_purchase_date,
           count(*) AS frequency, sum(revenue) AS monetary
    FROM marts.client_day
    GROUP BY client_id
), r_below AS (
    -- Clients strictly worse = running count of smaller values. Recency and
    -- frequency have few distinct values, so a histogram replaces a sort of
    -- every client; ties share one count and so one score.
    SELECT last_purchase_date, sum(k) OVER (ORDER BY last_purchase_date) - k AS below
    FROM (SELECT last_purchase_date, count(*) AS k FROM c GROUP BY 1) h
), f_below AS (
    SELECT frequency, sum(k) OVER (ORDER BY frequency) - k AS below
    FROM (SELECT frequency, count(*) AS k FROM c GROUP BY 1) h
), ranked AS (
    SELECT c.*,
           rb.below::bigint                      AS r_below,
           fb.below::bigint                      AS f_below,
           rank() OVER (ORDER BY c.monetary) - 1 AS m_below,
           count(*) OVER ()                      AS n
    FROM c
    JOIN r_below rb USING (last_purchase_date)
    JOIN f_below fb USING (frequency)
), scored AS (
    -- Tercile score: 1 + floor(3 * share of clients strictly worse).
    SELECT ranked.*,
           (1 + 3 * r_below / n)::smallint AS r_score,
           (1 + 3 * f_below / n)::smallint AS f_score,
           (1 + 3 * m_below / n)::smallint AS m_score
    FROM ranked
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
FROM scored
WITH NO DATA;
CREATE UNIQUE INDEX ON marts.client_rfm_scores (client_id);
CREATE INDEX ON marts.client_rfm_scores (segment);
COMMENT ON MATERIALIZED VIEW marts.client_rfm_scores IS 'Grain: client. The materialized part of marts.client_rfm (everything but the reference day and recency); query marts.client_rfm.';
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

-- ---------------------------------------------------------------- cohorts
CREATE MATERIALIZED VIEW marts.cohort_retention AS
WITH fp AS (
    SELECT client_id, cohort_month FROM marts.client_first_purchase
), sizes AS (
    SELECT cohort_month, count(*) AS cohort_size FROM fp GROUP BY cohort_month
), last AS (
    SELECT date_trunc('month', max(day))::date AS last_month FROM marts.daily_sales
), cm AS (
    SELECT client_id, date_trunc('month', day)::date AS activity_month, sum(revenue) AS revenue
    FROM marts.client_day
    GROUP BY 1, 2
), act AS (
    SELECT fp.cohort_month, cm.activity_month, count(*) AS active_clients, sum(cm.revenue) AS revenue
    FROM cm
    JOIN fp USING (client_id)
    GROUP BY 1, 2
), grid AS (
    -- Every month from the cohort's first to the newest, active or not, so
    -- that the LTV curve has no holes.
    SELECT s.cohort_month, s.cohort_size, g::date AS activity_month
    FROM sizes s CROSS JOIN last l,
         generate_series(s.cohort_month, l.last_month, interval '1 month') AS g
)
SELECT g.cohort_month,
       ((extract(year FROM g.activity_month) - extract(year FROM g.cohort_month)) * 12
        + extract(month FROM g.activity_month) - extract(month FROM g.cohort_month))::integer AS months_since_first_purchase,
       g.activity_month,
       g.cohort_size,
       coalesce(a.active_clients, 0)                           AS active_clients,
       coalesce(a.active_clients, 0)::numeric / g.cohort_size  AS retention_share,
       coalesce(a.revenue, 0)                                  AS revenue,
       sum(coalesce(a.revenue, 0)) OVER w                      AS cumulative_revenue,
       sum(coalesce(a.revenue, 0)) OVER w / g.cohort_size      AS cumulative_revenue_per_client
FROM grid g
LEFT JOIN act a USING (cohort_month, activity_month)
WINDOW w AS (PARTITION BY g.cohort_month ORDER BY g.activity_month)
WITH NO DATA;
CREATE UNIQUE INDEX ON marts.cohort_retention (cohort_month, months_since_first_purchase);
COMMENT ON MATERIALIZED VIEW marts.cohort_retention IS 'Grain: cohort (month of first purchase) and months since first purchase (0, 1, 2, ... up to the newest loaded month, which may be incomplete). Retention and the cumulative LTV curve.';
COMMENT ON COLUMN marts.cohort_retention.cohort_month IS 'First day of the month of the cohort''s first purchase.';
COMMENT ON COLUMN marts.cohort_retention.months_since_first_purchase IS 'Calendar months from cohort_month to activity_month: 0 = the first month.';
COMMENT ON COLUMN marts.cohort_retention.activity_month IS 'First day of the calendar month measured.';
COMMENT ON COLUMN marts.cohort_retention.cohort_size IS 'Clients whose first purchase is in cohort_month.';
COMMENT ON COLUMN marts.cohort_retention.active_clients IS 'Cohort clients with a purchase in activity_month (all of them at 0).';
COMMENT ON COLUMN marts.cohort_retention.retention_share IS 'active_clients / cohort_size.';
COMMENT ON COLUMN marts.cohort_retention.revenue IS 'Revenue of the cohort''s clients in activity_month.';
COMMENT ON COLUMN marts.cohort_retention.cumulative_revenue IS 'Revenue of the cohort''s clients from cohort_month through activity_month.';
COMMENT ON COLUMN marts.cohort_retention.cumulative_revenue_per_client IS 'LTV curve: cumulative_revenue / cohort_size (every cohort client counts, active or not).';

-- ---------------------------------------------------------- load health
CREATE VIEW marts.load_health AS
SELECT g::date                                      AS day,
       coalesce(dl.status, 'missing')               AS status,
       coalesce(dl.rows_fetched, 0)                 AS rows_fetched,
       coalesce(dl.rows_loaded, 0)                  AS rows_loaded,
       coalesce(dl.rows_rejected, 0)                AS rows_rejected,
       coalesce(dl.rejected_by_reason, '{}'::jsonb) AS rejected_by_reason,
       coalesce(dl.checksum_changes, 0) > 0         AS checksum_changed,
       coalesce(dl.checksum_changes, 0)             AS checksum_changes,
       coalesce(dl.attempts, 0)                     AS attempts,
       dl.last_error,
       dl.first_loaded_at,
       dl.loaded_at,
       dl.updated_at
FROM (SELECT min(purchase_date) AS lo, max(purchase_date) AS hi FROM marketplace.day_loads) span
CROSS JOIN LATERAL generate_series(span.lo, span.hi, interval '1 day') AS g
LEFT JOIN marketplace.day_loads dl ON dl.purchase_date = g::date;
COMMENT ON VIEW marts.load_health IS 'Grain: business day, from the first to the last day ever attempted (live view of marketplace.day_loads, no refresh). Days never attempted in between show status missing. Source of the data-quality dashboard.';
COMMENT ON COLUMN marts.load_health.day IS 'Business day.';
COMMENT ON COLUMN marts.load_health.status IS 'loaded, no_data (the API has nothing for the day), failed (last attempt failed, see last_error) or missing (never attempted).';
COMMENT ON COLUMN marts.load_health.rows_fetched IS 'Lines the API sent in the last load.';
COMMENT ON COLUMN marts.load_health.rows_loaded IS 'Lines accepted into marketplace.purchases.';
COMMENT ON COLUMN marts.load_health.rows_rejected IS 'Lines rejected by validation (kept in marketplace.rejected_purchases).';
COMMENT ON COLUMN marts.load_health.rejected_by_reason IS 'Rejected lines per reason code, e.g. {"zero_quantity": 98}; one row per reason in marts.load_rejections.';
COMMENT ON COLUMN marts.load_health.checksum_changed IS 'True when a re-fetch of the day ever returned different content and replaced it.';
COMMENT ON COLUMN marts.load_health.checksum_changes IS 'How many times a re-fetch returned different content and replaced the day.';
COMMENT ON COLUMN marts.load_health.attempts IS 'Load attempts of the day.';
COMMENT ON COLUMN marts.load_health.last_error IS 'Error of the last failed attempt.';
COMMENT ON COLUMN marts.load_health.first_loaded_at IS 'When the day was first loaded.';
COMMENT ON COLUMN marts.load_health.loaded_at IS 'When the day''s current content was loaded.';
COMMENT ON COLUMN marts.load_health.updated_at IS 'When the day''s load state last changed.';

CREATE VIEW marts.load_rejections AS
SELECT dl.purchase_date   AS day,
       r.key              AS reason,
       r.value::bigint    AS rows_rejected
FROM marketplace.day_loads dl
CROSS JOIN LATERAL jsonb_each_text(CASE WHEN jsonb_typeof(dl.rejected_by_reason) = 'object'
                                        THEN dl.rejected_by_reason ELSE '{}'::jsonb END) AS r;
COMMENT ON VIEW marts.load_rejections IS 'Grain: business day and rejection reason (only reasons with rejected lines). marts.load_health.rejected_by_reason unpacked for charts.';
COMMENT ON COLUMN marts.load_rejections.day IS 'Business day.';
COMMENT ON COLUMN marts.load_rejections.reason IS 'Reason code, e.g. zero_quantity (see marketplace.rejected_purchases.reason).';
COMMENT ON COLUMN marts.load_rejections.rows_rejected IS 'Lines of the day rejected for that reason.';
-- +goose StatementEnd

-- +goose Down
DROP SCHEMA marts CASCADE;
