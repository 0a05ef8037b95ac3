-- +goose Up
-- +goose StatementBegin
-- Incremental marts: the materialized views of 00010, which were rebuilt
-- over all history on every pass, become small tables maintained for the
-- days a pass changed, and views over them with the same names and columns.
--
-- How a change reaches the marts (see docs/marts.md):
--   * every write of marketplace.day_loads (each load, reload, no-data and
--     failure writes it in the day's own transaction) queues the day in
--     marketplace.marts_queue, by trigger, so the queue entry commits or
--     vanishes with the day's lines;
--   * every pass drains the queue (internal/marts.Update) in one
--     transaction: the per-day tables are recomputed for the queued days,
--     the per-client and per-month state is corrected by subtracting the
--     touched clients' old contribution and adding the new one, and the
--     global parts (RFM tercile thresholds, ABC/XYZ period totals) are
--     derived from those small tables. A failure or a kill rolls the whole
--     drain back and leaves the queue as it was, for the next pass.
--
-- Everything here is created empty, so every mart answers (with no rows)
-- right after the migration; the days already loaded are queued below.

DROP MATERIALIZED VIEW marts.cohort_retention, marts.client_rfm_scores, marts.product_sales_12m,
    marts.client_activity_daily, marts.sales_by_hour, marts.sales_by_gender, marts.monthly_sales,
    marts.daily_sales, marts.client_first_purchase, marts.client_day CASCADE;

-- ------------------------------------------------ bookkeeping (raw schema)
-- In schema marketplace: the read-only role can neither lock nor (once its
-- access to marketplace is revoked) read them.
CREATE TABLE marketplace.marts_queue (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    purchase_date date        NOT NULL,
    queued_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE marketplace.marts_queue IS 'Days whose lines or load state changed and that the marts do not reflect yet. Filled by a trigger on day_loads in the day''s own transaction; drained by every marketplace-etl pass. Empty = marts current.';

CREATE TABLE marketplace.marts_lock (
    id boolean PRIMARY KEY DEFAULT true CHECK (id)
);
INSERT INTO marketplace.marts_lock DEFAULT VALUES;
COMMENT ON TABLE marketplace.marts_lock IS 'One row, locked FOR UPDATE by the process maintaining the marts (a row lock needs UPDATE privilege, which the read-only role lacks), so that drains run one at a time.';

CREATE TABLE marketplace.day_locks (
    purchase_date date PRIMARY KEY
);
COMMENT ON TABLE marketplace.day_locks IS 'One row per day ever loaded, row-locked by the transaction loading the day so that two loaders of the same day run one after the other.';

CREATE FUNCTION marketplace.queue_marts_day() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO marketplace.marts_queue (purchase_date) VALUES (NEW.purchase_date);
    END IF;
    IF TG_OP = 'DELETE' OR OLD.purchase_date <> NEW.purchase_date THEN
        INSERT INTO marketplace.marts_queue (purchase_date) VALUES (OLD.purchase_date);
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER queue_marts_day AFTER INSERT OR UPDATE OR DELETE ON marketplace.day_loads
    FOR EACH ROW EXECUTE FUNCTION marketplace.queue_marts_day();

-- ----------------------------------------------------------- per-day tables
CREATE TABLE marts.daily_sales (
    day            date    PRIMARY KEY,
    lines          bigint  NOT NULL,
    units          bigint  NOT NULL,
    revenue        numeric NOT NULL,
    gross_revenue  numeric NOT NULL,
    discount       numeric NOT NULL,
    discount_share numeric,
    clients        bigint  NOT NULL,
    products       bigint  NOT NULL,
    avg_line_value numeric
);
COMMENT ON TABLE marts.daily_sales IS 'Grain: business day. Sales KPIs of every day that is loaded (a loaded day without lines has zeros) or has lines. Days that failed or were never loaded are absent: see marts.load_health.';
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

CREATE TABLE marts.sales_by_gender (
    day            date    NOT NULL,
    gender         text    NOT NULL,
    lines          bigint  NOT NULL,
    units          bigint  NOT NULL,
    revenue        numeric NOT NULL,
    gross_revenue  numeric NOT NULL,
    discount       numeric NOT NULL,
    clients        bigint  NOT NULL,
    avg_line_value numeric NOT NULL,
    PRIMARY KEY (day, gender)
);
COMMENT ON TABLE marts.sales_by_gender IS 'Grain: business day and gender (only pairs with lines). Filter by day and sum for any period; do not sum clients across days (a client buying on two days counts twice).';
COMMENT ON COLUMN marts.sales_by_gender.day IS 'Business day.';
COMMENT ON COLUMN marts.sales_by_gender.gender IS 'Gender of the line as sent by the API: M or F.';
COMMENT ON COLUMN marts.sales_by_gender.lines IS 'Purchase lines.';
COMMENT ON COLUMN marts.sales_by_gender.units IS 'Units: sum of quantity.';
COMMENT ON COLUMN marts.sales_by_gender.revenue IS 'Revenue: sum of total_price.';
COMMENT ON COLUMN marts.sales_by_gender.gross_revenue IS 'Revenue before discount: sum of quantity * price_per_item.';
COMMENT ON COLUMN marts.sales_by_gender.discount IS 'Discount amount: sum of quantity * discount_per_item.';
COMMENT ON COLUMN marts.sales_by_gender.clients IS 'Distinct clients that day with that gender.';
COMMENT ON COLUMN marts.sales_by_gender.avg_line_value IS 'revenue / lines.';

CREATE TABLE marts.sales_by_hour (
    day     date     NOT NULL,
    hour    smallint NOT NULL,
    lines   bigint   NOT NULL,
    units   bigint   NOT NULL,
    revenue numeric  NOT NULL,
    clients bigint   NOT NULL,
    PRIMARY KEY (day, hour)
);
COMMENT ON TABLE marts.sales_by_hour IS 'Grain: business day and hour of day (only pairs with lines), so a dashboard can filter a date range and then group by hour.';
COMMENT ON COLUMN marts.sales_by_hour.day IS 'Business day.';
COMMENT ON COLUMN marts.sales_by_hour.hour IS 'Hour of day 0..23 in the business time zone: seconds_from_midnight / 3600.';
COMMENT ON COLUMN marts.sales_by_hour.lines IS 'Purchase lines in that hour.';
COMMENT ON COLUMN marts.sales_by_hour.units IS 'Units: sum of quantity.';
COMMENT ON COLUMN marts.sales_by_hour.revenue IS 'Revenue: sum of total_price.';
COMMENT ON COLUMN marts.sales_by_hour.clients IS 'Distinct clients in that hour of that day.';

CREATE TABLE marts.client_day (
    client_id integer NOT NULL,
    day       date    NOT NULL,
    lines     bigint  NOT NULL,
    units     bigint  NOT NULL,
    revenue   numeric NOT NULL,
    PRIMARY KEY (day, client_id)
);
CREATE INDEX client_day_client_idx ON marts.client_day (client_id, day);
COMMENT ON TABLE marts.client_day IS 'Internal helper, grain: client and day. Base of the client marts, replaced for the days a pass changed; do not build dashboards on it.';
COMMENT ON COLUMN marts.client_day.client_id IS 'Client id.';
COMMENT ON COLUMN marts.client_day.day IS 'Business day of the purchases.';
COMMENT ON COLUMN marts.client_day.lines IS 'Purchase lines of the client that day.';
COMMENT ON COLUMN marts.client_day.units IS 'Units (sum of quantity) of the client that day.';
COMMENT ON COLUMN marts.client_day.revenue IS 'Revenue (sum of total_price) of the client that day.';

-- ------------------------------------------------- per-client / per-month
CREATE TABLE marts.client_stats (
    client_id           integer PRIMARY KEY,
    first_purchase_date date    NOT NULL,
    last_purchase_date  date    NOT NULL,
    frequency           bigint  NOT NULL,
    monetary            numeric NOT NULL,
    m_bucket            integer NOT NULL
);
CREATE INDEX client_stats_monetary_idx ON marts.client_stats (m_bucket, monetary);
COMMENT ON TABLE marts.client_stats IS 'Internal helper, grain: client. First and last purchase day, purchase days and revenue over all loaded data; recomputed for the clients of the days a pass changed. Base of client_rfm and client_first_purchase.';
COMMENT ON COLUMN marts.client_stats.client_id IS 'Client id.';
COMMENT ON COLUMN marts.client_stats.first_purchase_date IS 'Day of the client''s first purchase.';
COMMENT ON COLUMN marts.client_stats.last_purchase_date IS 'Day of the client''s latest purchase.';
COMMENT ON COLUMN marts.client_stats.frequency IS 'Distinct days with a purchase.';
COMMENT ON COLUMN marts.client_stats.monetary IS 'Revenue of the client over all loaded data.';
COMMENT ON COLUMN marts.client_stats.m_bucket IS 'floor(400 * ln(1 + monetary)) in float8: the bucket of marts.rfm_histogram the client''s monetary value falls in.';

CREATE TABLE marts.rfm_histogram (
    measure char(1) NOT NULL CHECK (measure IN ('r', 'f', 'm')),
    bucket  integer NOT NULL,
    clients bigint  NOT NULL,
    PRIMARY KEY (measure, bucket)
);
COMMENT ON TABLE marts.rfm_histogram IS 'Internal helper: clients per value of the RFM measures, corrected by delta for the clients of changed days, from which the tercile boundaries are found without ranking every client. r: last purchase day (days since 2000-01-01); f: frequency; m: m_bucket.';
COMMENT ON COLUMN marts.rfm_histogram.measure IS 'r (recency), f (frequency) or m (monetary).';
COMMENT ON COLUMN marts.rfm_histogram.bucket IS 'r: last_purchase_date - 2000-01-01; f: frequency; m: floor(400 * ln(1 + monetary)).';
COMMENT ON COLUMN marts.rfm_histogram.clients IS 'Clients with that value (bucket).';

CREATE TABLE marts.client_events (
    day         date   PRIMARY KEY,
    d7          bigint NOT NULL,
    d30         bigint NOT NULL,
    new_clients bigint NOT NULL
);
COMMENT ON TABLE marts.client_events IS 'Internal helper, grain: day. Changes of the rolling 7- and 30-day distinct client counts on that day (a running sum gives WAU/MAU), and the clients whose first purchase is that day. Corrected by delta for the clients of changed days.';
COMMENT ON COLUMN marts.client_events.day IS 'Day the change applies from.';
COMMENT ON COLUMN marts.client_events.d7 IS 'Change of the 7-day distinct client count on this day.';
COMMENT ON COLUMN marts.client_events.d30 IS 'Change of the 30-day distinct client count on this day.';
COMMENT ON COLUMN marts.client_events.new_clients IS 'Clients whose first purchase ever is this day.';

CREATE TABLE marts.cohort_activity (
    cohort_month   date    NOT NULL,
    activity_month date    NOT NULL,
    active_clients bigint  NOT NULL,
    revenue        numeric NOT NULL,
    PRIMARY KEY (cohort_month, activity_month)
);
COMMENT ON TABLE marts.cohort_activity IS 'Internal helper, grain: cohort month and activity month (only pairs with activity). Corrected by delta for the clients of changed days. Base of cohort_retention and of monthly_sales.clients.';
COMMENT ON COLUMN marts.cohort_activity.cohort_month IS 'First day of the month of the clients'' first purchase.';
COMMENT ON COLUMN marts.cohort_activity.activity_month IS 'First day of the month measured.';
COMMENT ON COLUMN marts.cohort_activity.active_clients IS 'Cohort clients with a purchase in activity_month.';
COMMENT ON COLUMN marts.cohort_activity.revenue IS 'Their revenue in activity_month.';

CREATE TABLE marts.product_day (
    day        date    NOT NULL,
    product_id integer NOT NULL,
    units      bigint  NOT NULL,
    revenue    numeric NOT NULL,
    PRIMARY KEY (day, product_id)
);
COMMENT ON TABLE marts.product_day IS 'Internal helper, grain: day and product sold that day. Replaced for the changed days; its old rows are what a changed day takes away from product_month.';
COMMENT ON COLUMN marts.product_day.day IS 'Business day.';
COMMENT ON COLUMN marts.product_day.product_id IS 'Product id.';
COMMENT ON COLUMN marts.product_day.units IS 'Units (sum of quantity) that day.';
COMMENT ON COLUMN marts.product_day.revenue IS 'Revenue (sum of total_price) that day.';

CREATE TABLE marts.product_month (
    month      date    NOT NULL,
    product_id integer NOT NULL,
    units      bigint  NOT NULL,
    revenue    numeric NOT NULL,
    PRIMARY KEY (month, product_id)
);
COMMENT ON TABLE marts.product_month IS 'Internal helper, grain: month and product sold in it. Corrected by delta from product_day for the changed days; base of the ABC/XYZ period and of monthly_sales.products.';
COMMENT ON COLUMN marts.product_month.month IS 'First day of the calendar month.';
COMMENT ON COLUMN marts.product_month.product_id IS 'Product id.';
COMMENT ON COLUMN marts.product_month.units IS 'Units (sum of quantity) in the month.';
COMMENT ON COLUMN marts.product_month.revenue IS 'Revenue (sum of total_price) in the month.';

CREATE TABLE marts.monthly_products (
    month    date   PRIMARY KEY,
    products bigint NOT NULL
);
COMMENT ON TABLE marts.monthly_products IS 'Internal helper, grain: month. Distinct products sold in the month (rows of product_month).';
COMMENT ON COLUMN marts.monthly_products.month IS 'First day of the calendar month.';
COMMENT ON COLUMN marts.monthly_products.products IS 'Distinct products sold in the month.';

-- ---------------------------------------------------------- global parts
CREATE TABLE marts.abc_xyz_period (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    period_start    date    NOT NULL,
    period_end      date    NOT NULL,
    months          integer NOT NULL,
    months_known    integer NOT NULL
);
COMMENT ON TABLE marts.abc_xyz_period IS 'Internal helper, one row once data is loaded: the ABC/XYZ period as of the last marts update.';
COMMENT ON COLUMN marts.abc_xyz_period.id IS 'Always true: makes this a single-row table.';
COMMENT ON COLUMN marts.abc_xyz_period.period_start IS 'First day of the period.';
COMMENT ON COLUMN marts.abc_xyz_period.period_end IS 'Last day of the period.';
COMMENT ON COLUMN marts.abc_xyz_period.months IS 'Calendar months in the period.';
COMMENT ON COLUMN marts.abc_xyz_period.months_known IS 'Months of the period with at least one loaded day (the others are unknown and left out of XYZ).';

CREATE TABLE marts.product_period (
    product_id integer PRIMARY KEY,
    revenue    numeric NOT NULL,
    units      bigint  NOT NULL,
    units_sq   numeric NOT NULL
);
COMMENT ON TABLE marts.product_period IS 'Internal helper, grain: product sold in the ABC/XYZ period. Recomputed from product_month when the period moves or one of its months changed.';
COMMENT ON COLUMN marts.product_period.product_id IS 'Product id.';
COMMENT ON COLUMN marts.product_period.revenue IS 'Revenue in the period.';
COMMENT ON COLUMN marts.product_period.units IS 'Units in the period.';
COMMENT ON COLUMN marts.product_period.units_sq IS 'Sum over the period''s months of the squared monthly units (for the coefficient of variation).';

CREATE TABLE marts.rfm_thresholds (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    clients  bigint  NOT NULL,
    r_2      date,
    r_3      date,
    f_2      bigint,
    f_3      bigint,
    m_2      numeric,
    m_3      numeric
);
COMMENT ON TABLE marts.rfm_thresholds IS 'Internal helper, one row: the tercile boundaries of RFM as of the last marts update. A score is at least 2 above the _2 value and 3 above the _3 value, which is exactly 1 + floor(3 * clients strictly worse / clients).';
COMMENT ON COLUMN marts.rfm_thresholds.id IS 'Always true: makes this a single-row table.';
COMMENT ON COLUMN marts.rfm_thresholds.clients IS 'Clients with a purchase.';
COMMENT ON COLUMN marts.rfm_thresholds.r_2 IS 'Recency score is >= 2 for a last purchase after this day.';
COMMENT ON COLUMN marts.rfm_thresholds.r_3 IS 'Recency score is 3 for a last purchase after this day.';
COMMENT ON COLUMN marts.rfm_thresholds.f_2 IS 'Frequency score is >= 2 above this many purchase days.';
COMMENT ON COLUMN marts.rfm_thresholds.f_3 IS 'Frequency score is 3 above this many purchase days.';
COMMENT ON COLUMN marts.rfm_thresholds.m_2 IS 'Monetary score is >= 2 above this revenue.';
COMMENT ON COLUMN marts.rfm_thresholds.m_3 IS 'Monetary score is 3 above this revenue.';

COMMENT ON TABLE marts.refresh_state IS 'Outcome of the latest marts update (mart = ''all''): how fresh the marts are. Days still waiting are in marketplace.marts_queue.';
COMMENT ON COLUMN marts.refresh_state.mart IS '''all'' for a whole marts update (marts.Update or marts rebuild).';
COMMENT ON COLUMN marts.refresh_state.status IS 'succeeded or failed (an update is one transaction, so running is not written any more).';
COMMENT ON COLUMN marts.refresh_state.started_at IS 'Database time the update started; the marts reflect every load committed before it.';
COMMENT ON COLUMN marts.refresh_state.duration_ms IS 'How long the update took, in milliseconds.';
COMMENT ON COLUMN marts.refresh_state.error IS 'Error of a failed update; null otherwise.';
COMMENT ON COLUMN marts.refresh_state.finished_at IS 'Database time the update ended.';
DELETE FROM marts.refresh_state;

-- ------------------------------------------------------------------ views
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

CREATE VIEW marts.client_first_purchase AS
SELECT client_id, first_purchase_date, date_trunc('month', first_purchase_date)::date AS cohort_month
FROM marts.client_stats;
COMMENT ON VIEW marts.client_first_purchase IS 'Helper, grain: client. The day of each client''s first purchase ever loaded, and its cohort month; client_rfm has the same dates for dashboards.';
COMMENT ON COLUMN marts.client_first_purchase.client_id IS 'Client id.';
COMMENT ON COLUMN marts.client_first_purchase.first_purchase_date IS 'Business day of the client''s first purchase line.';
COMMENT ON COLUMN marts.client_first_purchase.cohort_month IS 'First day of the calendar month of the first purchase: the client''s cohort.';

CREATE VIEW marts.client_activity_daily AS
WITH e AS (
    -- Every day of daily_sales gets a row even without events, so that the
    -- running sums are defined on it.
    SELECT day, sum(d7) AS d7, sum(d30) AS d30, sum(new_clients) AS new_clients
    FROM (SELECT day, d7, d30, new_clients FROM marts.client_events
          UNION ALL
          SELECT day, 0, 0, 0 FROM marts.daily_sales) u
    GROUP BY day
), r AS (
    SELECT day, new_clients,
           sum(d7) OVER (ORDER BY day)  AS active_clients_7d,
           sum(d30) OVER (ORDER BY day) AS active_clients_30d
    FROM e
)
SELECT s.day,
       s.clients                             AS active_clients,
       r.active_clients_7d::bigint           AS active_clients_7d,
       r.active_clients_30d::bigint          AS active_clients_30d,
       r.new_clients::bigint                 AS new_clients,
       s.clients - r.new_clients::bigint     AS returning_clients
FROM marts.daily_sales s
JOIN r USING (day);
COMMENT ON VIEW marts.client_activity_daily IS 'Grain: business day (the days of daily_sales). DAU, rolling 7-day (WAU) and 30-day (MAU) distinct active clients, new and returning clients. Windows are calendar days ending on the day, inclusive.';
COMMENT ON COLUMN marts.client_activity_daily.day IS 'Business day.';
COMMENT ON COLUMN marts.client_activity_daily.active_clients IS 'DAU: distinct clients with a line that day.';
COMMENT ON COLUMN marts.client_activity_daily.active_clients_7d IS 'WAU: distinct clients with a line in the 7 days ending on day (day-6 .. day).';
COMMENT ON COLUMN marts.client_activity_daily.active_clients_30d IS 'MAU: distinct clients with a line in the 30 days ending on day (day-29 .. day).';
COMMENT ON COLUMN marts.client_activity_daily.new_clients IS 'Clients whose first purchase ever (in the loaded data) is that day.';
COMMENT ON COLUMN marts.client_activity_daily.returning_clients IS 'Active clients that day who had bought on an earlier day: active_clients - new_clients.';

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

CREATE VIEW marts.cohort_retention AS
WITH sizes AS (
    SELECT cohort_month, active_clients AS cohort_size
    FROM marts.cohort_activity
    WHERE activity_month = cohort_month
), known AS (
    -- Months with at least one loaded day. A month never loaded is
    -- unknown, not a month without activity: it is left out.
    SELECT DISTINCT date_trunc('month', day)::date AS month FROM marts.daily_sales
), grid AS (
    SELECT s.cohort_month, s.cohort_size, k.month AS activity_month
    FROM sizes s
    JOIN known k ON k.month >= s.cohort_month
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
       sum(coalesce(a.revenue, 0)) OVER w / g.cohort_size      AS cumulative_revenue_per_client,
       count(*) OVER w                                         AS months_known
FROM grid g
LEFT JOIN marts.cohort_activity a USING (cohort_month, activity_month)
WINDOW w AS (PARTITION BY g.cohort_month ORDER BY g.activity_month);
COMMENT ON VIEW marts.cohort_retention IS 'Grain: cohort (month of first purchase) and months since first purchase (0, 1, 2, ... up to the newest loaded month, which may be incomplete). Retention and the cumulative LTV curve. Months with no loaded day are unknown and absent (see months_known).';
COMMENT ON COLUMN marts.cohort_retention.cohort_month IS 'First day of the month of the cohort''s first purchase.';
COMMENT ON COLUMN marts.cohort_retention.months_since_first_purchase IS 'Calendar months from cohort_month to activity_month: 0 = the first month.';
COMMENT ON COLUMN marts.cohort_retention.activity_month IS 'First day of the calendar month measured.';
COMMENT ON COLUMN marts.cohort_retention.cohort_size IS 'Clients whose first purchase is in cohort_month.';
COMMENT ON COLUMN marts.cohort_retention.active_clients IS 'Cohort clients with a purchase in activity_month (all of them at 0).';
COMMENT ON COLUMN marts.cohort_retention.retention_share IS 'active_clients / cohort_size.';
COMMENT ON COLUMN marts.cohort_retention.revenue IS 'Revenue of the cohort''s clients in activity_month.';
COMMENT ON COLUMN marts.cohort_retention.cumulative_revenue IS 'Revenue of the cohort''s clients from cohort_month through activity_month (known months only).';
COMMENT ON COLUMN marts.cohort_retention.cumulative_revenue_per_client IS 'LTV curve: cumulative_revenue / cohort_size (every cohort client counts, active or not).';
COMMENT ON COLUMN marts.cohort_retention.months_known IS 'Known months (with at least one loaded day) from cohort_month through activity_month; less than months_since_first_purchase + 1 when a month in between was never loaded.';

-- The days already loaded: the next pass fills the marts from them.
INSERT INTO marketplace.marts_queue (purchase_date) SELECT purchase_date FROM marketplace.day_loads;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$ BEGIN RAISE EXCEPTION 'migration 00011 cannot be undone: restore a backup taken before it'; END $$;
-- +goose StatementEnd
