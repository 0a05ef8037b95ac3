-- +goose Up
-- +goose StatementBegin
-- The marts' per-client and per-product state, packed so that a first
-- update after a backfill writes about one row per client and a few
-- hundred rows for the products, instead of one indexed row per line.
--
-- 00011 kept marts.client_day (one row per client and day, i.e. about
-- one per purchase line, in two indexes, one of them in random order) and
-- marts.product_day (one row per product and day: again about one per
-- line). Writing them was most of the cost of a first update (65 s for
-- 2 M lines against 19 s to load them; docs/benchmarks.md). Now:
--   * marts.client_stats carries each client's purchase days and revenue
--     per day as two arrays sorted by day: an update reads and rewrites the
--     touched clients' rows by primary key, and a first update writes one
--     row per client in key order;
--   * marts.product_days holds one row per day (the day's products, units
--     and revenue as arrays), marts.product_months one row per month;
--   * client_day, product_day, product_month and monthly_products become
--     views over them, with the same columns (client_day without lines and
--     units, which no mart used);
--   * the monetary-bucket index of client_stats goes: filled in random
--     order it cost more than the table itself; the RFM update scans the
--     table for the one or two buckets it needs instead.
-- The marts are emptied and every day queued again: the next pass fills
-- them, in one transaction, from the loaded lines.
DROP VIEW marts.monthly_sales;
DROP TABLE marts.monthly_products, marts.product_month, marts.product_day, marts.client_day;
DROP INDEX marts.client_stats_m_bucket_idx;

DELETE FROM marts.daily_sales;
DELETE FROM marts.sales_by_gender;
DELETE FROM marts.sales_by_hour;
DELETE FROM marts.client_stats;
DELETE FROM marts.client_events;
DELETE FROM marts.cohort_activity;
DELETE FROM marts.rfm_histogram;
DELETE FROM marts.rfm_thresholds;
DELETE FROM marts.abc_xyz_period;
DELETE FROM marts.product_period;
-- Two halves that read nothing of each other are updated side by side, in
-- transactions of their own (internal/marts): the day marts and the client
-- marts. Each day change is queued once for each.
ALTER TABLE marketplace.marts_queue
    ADD COLUMN part text NOT NULL DEFAULT 'clients' CHECK (part IN ('days', 'clients'));
COMMENT ON COLUMN marketplace.marts_queue.part IS 'days: for daily_sales, sales_by_*, product_days/months and the ABC/XYZ period; clients: for client_stats and the marts derived from it. Each change is queued once for each.';
CREATE OR REPLACE FUNCTION marketplace.queue_marts_day() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO marketplace.marts_queue (purchase_date, part) VALUES (NEW.purchase_date, 'days'), (NEW.purchase_date, 'clients');
    END IF;
    IF TG_OP = 'DELETE' OR OLD.purchase_date <> NEW.purchase_date THEN
        INSERT INTO marketplace.marts_queue (purchase_date, part) VALUES (OLD.purchase_date, 'days'), (OLD.purchase_date, 'clients');
    END IF;
    RETURN NULL;
END
$fn$;
DELETE FROM marketplace.marts_queue;
INSERT INTO marketplace.marts_queue (purchase_date, part)
SELECT d.purchase_date, p.part
FROM (SELECT purchase_date FROM marketplace.day_loads
      UNION
      SELECT DISTINCT purchase_date FROM marketplace.purchases) d
CROSS JOIN (VALUES ('days'), ('clients')) AS p(part);

CREATE TABLE marts.client_days_applied (
    day date PRIMARY KEY
);
COMMENT ON TABLE marts.client_days_applied IS 'Internal helper of the client half: the days with lines that client_stats shows. Only when a changed day is among them does an update look for clients who no longer bought on it.';
COMMENT ON COLUMN marts.client_days_applied.day IS 'Business day.';

ALTER TABLE marts.client_stats
    ADD COLUMN days     date[]    NOT NULL,
    ADD COLUMN revenues numeric[] NOT NULL;
COMMENT ON TABLE marts.client_stats IS 'Internal helper, grain: client. First and last purchase day, purchase days and revenue over all loaded data, and the purchase days themselves; rewritten for the clients of the days a pass changed. Base of client_rfm, client_first_purchase and client_day.';
COMMENT ON COLUMN marts.client_stats.m_bucket IS 'floor(400 * ln(1 + monetary)) in float8: the bucket of marts.rfm_histogram the client''s monetary value falls in.';
-- No statistics on the arrays: nothing filters on their elements, and
-- ANALYZE would spend seconds collecting element statistics after a first
-- update.
ALTER TABLE marts.client_stats ALTER days SET STATISTICS 0, ALTER revenues SET STATISTICS 0;
COMMENT ON COLUMN marts.client_stats.days IS 'The client''s purchase days, ascending (cardinality = frequency).';
COMMENT ON COLUMN marts.client_stats.revenues IS 'Revenue (sum of total_price) of the client on each day of days, same order.';

CREATE TABLE marts.product_days (
    day         date      PRIMARY KEY,
    product_ids integer[] NOT NULL,
    units       bigint[]  NOT NULL,
    revenue     numeric[] NOT NULL
);
-- Stored uncompressed: compressing a day's arrays (tens of kB) costs more
-- CPU than the space is worth.
ALTER TABLE marts.product_days ALTER product_ids SET STORAGE EXTERNAL, ALTER units SET STORAGE EXTERNAL,
    ALTER revenue SET STORAGE EXTERNAL, ALTER product_ids SET STATISTICS 0, ALTER units SET STATISTICS 0,
    ALTER revenue SET STATISTICS 0;
COMMENT ON TABLE marts.product_days IS 'Internal helper, grain: day with lines. The products sold that day (ascending ids) with their units and revenue, as arrays of the same order; replaced for the changed days. Read it through marts.product_day.';
COMMENT ON COLUMN marts.product_days.day IS 'Business day.';
COMMENT ON COLUMN marts.product_days.product_ids IS 'Products sold that day, ascending.';
COMMENT ON COLUMN marts.product_days.units IS 'Units (sum of quantity) of each product that day.';
COMMENT ON COLUMN marts.product_days.revenue IS 'Revenue (sum of total_price) of each product that day.';

CREATE TABLE marts.product_months (
    month       date      PRIMARY KEY,
    product_ids integer[] NOT NULL,
    units       bigint[]  NOT NULL,
    revenue     numeric[] NOT NULL
);
ALTER TABLE marts.product_months ALTER product_ids SET STORAGE EXTERNAL, ALTER units SET STORAGE EXTERNAL,
    ALTER revenue SET STORAGE EXTERNAL, ALTER product_ids SET STATISTICS 0, ALTER units SET STATISTICS 0,
    ALTER revenue SET STATISTICS 0;
COMMENT ON TABLE marts.product_months IS 'Internal helper, grain: month with lines. The products sold in the month (ascending ids) with their units and revenue, recomputed from product_days for the months of the changed days. Base of the ABC/XYZ period and of monthly_sales.products; read it through marts.product_month.';
COMMENT ON COLUMN marts.product_months.month IS 'First day of the calendar month.';
COMMENT ON COLUMN marts.product_months.product_ids IS 'Products sold in the month, ascending.';
COMMENT ON COLUMN marts.product_months.units IS 'Units (sum of quantity) of each product in the month.';
COMMENT ON COLUMN marts.product_months.revenue IS 'Revenue (sum of total_price) of each product in the month.';

-- The ABC/XYZ period's product totals, one row of arrays as well: moving
-- the period by a month rewrites one row instead of every product's.
DROP VIEW marts.product_abc_xyz, marts.product_sales_12m;
DROP TABLE marts.product_period;
CREATE TABLE marts.period_products (
    id          boolean   PRIMARY KEY DEFAULT true CHECK (id),
    product_ids integer[] NOT NULL,
    revenue     numeric[] NOT NULL,
    units       bigint[]  NOT NULL,
    units_sq    numeric[] NOT NULL
);
ALTER TABLE marts.period_products ALTER product_ids SET STORAGE EXTERNAL, ALTER revenue SET STORAGE EXTERNAL,
    ALTER units SET STORAGE EXTERNAL, ALTER units_sq SET STORAGE EXTERNAL, ALTER product_ids SET STATISTICS 0,
    ALTER revenue SET STATISTICS 0, ALTER units SET STATISTICS 0, ALTER units_sq SET STATISTICS 0;
COMMENT ON TABLE marts.period_products IS 'Internal helper, one row once there is an ABC/XYZ period: the products sold in it (ascending ids) with their totals, as arrays of the same order; corrected by the months that leave, enter or change in the period. Read it through marts.product_period.';
COMMENT ON COLUMN marts.period_products.id IS 'Always true: makes this a single-row table.';
COMMENT ON COLUMN marts.period_products.product_ids IS 'Products sold in the period, ascending.';
COMMENT ON COLUMN marts.period_products.revenue IS 'Revenue of each product in the period.';
COMMENT ON COLUMN marts.period_products.units IS 'Units of each product in the period.';
COMMENT ON COLUMN marts.period_products.units_sq IS 'Sum over the period''s months of each product''s squared monthly units (for the coefficient of variation).';

CREATE VIEW marts.product_period AS
SELECT u.product_id, u.revenue, u.units, u.units_sq
FROM marts.period_products p, unnest(p.product_ids, p.revenue, p.units, p.units_sq) AS u(product_id, revenue, units, units_sq);
COMMENT ON VIEW marts.product_period IS 'Internal helper, grain: product sold in the ABC/XYZ period (marts.period_products, one row per product).';
COMMENT ON COLUMN marts.product_period.product_id IS 'Product id.';
COMMENT ON COLUMN marts.product_period.revenue IS 'Revenue in the period.';
COMMENT ON COLUMN marts.product_period.units IS 'Units in the period.';
COMMENT ON COLUMN marts.product_period.units_sq IS 'Sum over the period''s months of the squared monthly units (for the coefficient of variation).';

CREATE VIEW marts.client_day AS
SELECT c.client_id, u.day, u.revenue
FROM marts.client_stats c, unnest(c.days, c.revenues) AS u(day, revenue);
COMMENT ON VIEW marts.client_day IS 'Internal helper, grain: client and day with a purchase: the days and revenues of marts.client_stats, one row each.';
COMMENT ON COLUMN marts.client_day.client_id IS 'Client id.';
COMMENT ON COLUMN marts.client_day.day IS 'Business day of the purchases.';
COMMENT ON COLUMN marts.client_day.revenue IS 'Revenue (sum of total_price) of the client that day.';

CREATE VIEW marts.product_day AS
SELECT d.day, u.product_id, u.units, u.revenue
FROM marts.product_days d, unnest(d.product_ids, d.units, d.revenue) AS u(product_id, units, revenue);
COMMENT ON VIEW marts.product_day IS 'Internal helper, grain: day and product sold that day (marts.product_days, one row per product).';
COMMENT ON COLUMN marts.product_day.day IS 'Business day.';
COMMENT ON COLUMN marts.product_day.product_id IS 'Product id.';
COMMENT ON COLUMN marts.product_day.units IS 'Units (sum of quantity) that day.';
COMMENT ON COLUMN marts.product_day.revenue IS 'Revenue (sum of total_price) that day.';

CREATE VIEW marts.product_month AS
SELECT m.month, u.product_id, u.units, u.revenue
FROM marts.product_months m, unnest(m.product_ids, m.units, m.revenue) AS u(product_id, units, revenue);
COMMENT ON VIEW marts.product_month IS 'Internal helper, grain: month and product sold in it (marts.product_months, one row per product).';
COMMENT ON COLUMN marts.product_month.month IS 'First day of the calendar month.';
COMMENT ON COLUMN marts.product_month.product_id IS 'Product id.';
COMMENT ON COLUMN marts.product_month.units IS 'Units (sum of quantity) in the month.';
COMMENT ON COLUMN marts.product_month.revenue IS 'Revenue (sum of total_price) in the month.';

CREATE VIEW marts.monthly_products AS
SELECT month, cardinality(product_ids)::bigint AS products FROM marts.product_months;
COMMENT ON VIEW marts.monthly_products IS 'Internal helper, grain: month. Distinct products sold in the month.';
COMMENT ON COLUMN marts.monthly_products.month IS 'First day of the calendar month.';
COMMENT ON COLUMN marts.monthly_products.products IS 'Distinct products sold in the month.';
CREATE VIEW marts.monthly_sales AS
WITH m AS (
    SELECT date_trunc('month', day)::date AS month,
           sum(lines)::bigint             AS lines,
           sum(units)::bigint             AS units,
           sum(revenue)                   AS revenue,
           sum(gross_revenue)             AS gross_revenue,
           sum(discount)                  AS discount,
           count(*)                       AS days_loaded
    FROM marts.daily_sales
    GROUP BY 1
), c AS (
    SELECT activity_month AS month, sum(active_clients)::bigint AS clients
    FROM marts.cohort_activity
    GROUP BY 1
), x AS (
    SELECT m.*,
           m.discount / nullif(m.gross_revenue, 0) AS discount_share,
           coalesce(c.clients, 0)                  AS clients,
           coalesce(p.products, 0)                 AS products,
           m.revenue / nullif(m.lines, 0)          AS avg_line_value,
           -- Against the previous calendar month only: a month without any
           -- loaded day leaves the next one without a comparison.
           CASE WHEN lag(m.month) OVER (ORDER BY m.month) = (m.month - interval '1 month')::date
                THEN lag(m.revenue) OVER (ORDER BY m.month) END AS prev_revenue
    FROM m
    LEFT JOIN c USING (month)
    LEFT JOIN marts.monthly_products p USING (month)
)
SELECT month, lines, units, revenue, gross_revenue, discount, discount_share, clients, products, avg_line_value,
       prev_revenue,
       revenue - prev_revenue                             AS revenue_mom_change,
       (revenue - prev_revenue) / nullif(prev_revenue, 0) AS revenue_mom_change_share,
       days_loaded
FROM x;
COMMENT ON VIEW marts.monthly_sales IS 'Grain: calendar month. The daily_sales KPIs per month (distinct clients and products counted over the month, not summed), plus month-over-month revenue change. The newest month is usually incomplete: see days_loaded.';
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
CREATE VIEW marts.product_sales_12m AS
SELECT p.product_id,
       p.revenue,
       p.units,
       p.revenue / nullif(sum(p.revenue) OVER (), 0) AS revenue_share,
       -- Default window frame (RANGE ... CURRENT ROW) includes peers:
       -- products with equal revenue share one cumulative share and so one
       -- class, whatever their ids.
       sum(p.revenue) OVER (ORDER BY p.revenue DESC) / nullif(sum(p.revenue) OVER (), 0) AS cumulative_share,
       -- Population standard deviation / mean of the monthly units over the
       -- known months: sqrt(k * sum(u^2) - sum(u)^2) / sum(u).
       sqrt(greatest(b.months_known * p.units_sq - p.units::numeric * p.units, 0)) / nullif(p.units, 0) AS cv,
       b.months,
       b.months_known,
       b.period_start,
       b.period_end
FROM marts.product_period p
CROSS JOIN marts.abc_xyz_period b;
COMMENT ON VIEW marts.product_sales_12m IS 'Grain: product sold in the ABC/XYZ period. Revenue, units, shares and variation over the trailing 12 complete months; marts.product_abc_xyz adds the classes from marts.abc_xyz_settings.';
COMMENT ON COLUMN marts.product_sales_12m.product_id IS 'Product id.';
COMMENT ON COLUMN marts.product_sales_12m.revenue IS 'Revenue (sum of total_price) in the period.';
COMMENT ON COLUMN marts.product_sales_12m.units IS 'Units (sum of quantity) in the period.';
COMMENT ON COLUMN marts.product_sales_12m.revenue_share IS 'revenue / revenue of all products in the period.';
COMMENT ON COLUMN marts.product_sales_12m.cumulative_share IS 'Share of period revenue of all products with revenue >= this one (descending revenue order; ties share one value).';
COMMENT ON COLUMN marts.product_sales_12m.cv IS 'Coefficient of variation of monthly units over the period''s known months (population standard deviation / mean, known months without sales as 0).';
COMMENT ON COLUMN marts.product_sales_12m.months IS 'Number of calendar months in the period (12 once a year of data is loaded).';
COMMENT ON COLUMN marts.product_sales_12m.months_known IS 'Months of the period with at least one loaded day; months never loaded are unknown and left out of cv.';
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
           -- A product without revenue is C whatever the thresholds (with
           -- abc_b_max = 1 its cumulative share 1 would make it B).
           CASE WHEN p.revenue = 0 THEN 'C'
                WHEN p.cumulative_share <= s.a_max THEN 'A'
                WHEN p.cumulative_share <= s.b_max THEN 'B'
                ELSE 'C' END AS abc_class,
           CASE WHEN p.cv <= s.x_max THEN 'X'
                WHEN p.cv <= s.y_max THEN 'Y'
                ELSE 'Z' END AS xyz_class
    FROM marts.product_sales_12m p CROSS JOIN s
)
SELECT product_id, revenue, units, revenue_share, cumulative_share, abc_class, cv, xyz_class,
       abc_class || xyz_class AS abc_xyz_class, months, period_start, period_end, months_known
FROM c;
COMMENT ON VIEW marts.product_abc_xyz IS 'Grain: product sold in the trailing 12 complete months before the newest loaded day. ABC by cumulative revenue share in descending revenue order, XYZ by coefficient of variation of monthly units over the known months, thresholds from marts.abc_xyz_settings (applied live).';
COMMENT ON COLUMN marts.product_abc_xyz.product_id IS 'Product id.';
COMMENT ON COLUMN marts.product_abc_xyz.revenue IS 'Revenue (sum of total_price) in the period.';
COMMENT ON COLUMN marts.product_abc_xyz.units IS 'Units (sum of quantity) in the period.';
COMMENT ON COLUMN marts.product_abc_xyz.revenue_share IS 'revenue / revenue of all products in the period.';
COMMENT ON COLUMN marts.product_abc_xyz.cumulative_share IS 'Share of period revenue of all products with revenue >= this one (descending revenue order; ties share one value).';
COMMENT ON COLUMN marts.product_abc_xyz.abc_class IS 'A: cumulative_share <= abc_a_max (0.80); B: <= abc_b_max (0.95); C: the rest, and always C for a product without revenue (free-only).';
COMMENT ON COLUMN marts.product_abc_xyz.cv IS 'Coefficient of variation of monthly units (population stddev / mean over the known months, known months without sales as 0).';
COMMENT ON COLUMN marts.product_abc_xyz.xyz_class IS 'X: cv <= xyz_x_max (0.10); Y: cv <= xyz_y_max (0.25); Z: above.';
COMMENT ON COLUMN marts.product_abc_xyz.abc_xyz_class IS 'abc_class || xyz_class: AX .. CZ.';
COMMENT ON COLUMN marts.product_abc_xyz.months IS 'Number of calendar months in the period.';
COMMENT ON COLUMN marts.product_abc_xyz.months_known IS 'Months of the period with at least one loaded day; the others are unknown, not zero, and left out of cv.';
COMMENT ON COLUMN marts.product_abc_xyz.period_start IS 'First day of the period.';
COMMENT ON COLUMN marts.product_abc_xyz.period_end IS 'Last day of the period.';
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$ BEGIN RAISE EXCEPTION 'migration 00013 cannot be undone: restore a backup taken before it'; END $$;
-- +goose StatementEnd
