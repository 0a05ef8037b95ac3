-- +goose Up
-- +goose StatementBegin
-- A summary of each loaded day, written by the loader in the day's own
-- transaction from the lines it has just parsed: the day's totals, its
-- totals by gender, by hour, by product and by client.
--
-- The marts used to compute all of these from marketplace.purchases, a
-- set-based pass over every line of every changed day (most of the cost
-- of a first update after a backfill: 2 M lines sorted by product, by
-- client, by hour; docs/benchmarks.md). The loader already holds each
-- line once, so it adds it to the summary for a fraction of that, and the
-- marts read one row per day instead:
--   * the day marts (daily_sales, sales_by_gender, sales_by_hour,
--     product_days) are copied from the summary;
--   * the client marts take each day's clients and their revenue of the
--     day from it.
--
-- A summary is current exactly when it exists: every statement of the
-- product that removes a day's lines removes its summary too, and a load
-- writes it after the lines. A day without a summary (loaded before this
-- migration, or whose sums could not be kept exactly by the loader) is
-- computed from its lines, as before. marts rebuild ignores the summaries
-- and computes everything from the lines: it stays the reference that the
-- tests compare the summaries' results with.
CREATE TABLE marketplace.day_summaries (
    purchase_date        date      PRIMARY KEY,
    lines                bigint    NOT NULL,
    units                bigint    NOT NULL,
    revenue              numeric   NOT NULL,
    gross_revenue        numeric   NOT NULL,
    discount             numeric   NOT NULL,
    clients              bigint    NOT NULL,
    genders              text[]    NOT NULL,
    gender_lines         bigint[]  NOT NULL,
    gender_units         bigint[]  NOT NULL,
    gender_revenue       numeric[] NOT NULL,
    gender_gross_revenue numeric[] NOT NULL,
    gender_discount      numeric[] NOT NULL,
    gender_clients       bigint[]  NOT NULL,
    hours                smallint[] NOT NULL,
    hour_lines           bigint[]  NOT NULL,
    hour_units           bigint[]  NOT NULL,
    hour_revenue         numeric[] NOT NULL,
    hour_clients         bigint[]  NOT NULL,
    -- The long arrays are kept as the text of their literals: parsing
    -- them into arrays cost the load most of the summary's server time
    -- (about 4 of 5 ms a day, in array_in), while the marts read them once
    -- (the client ones in the ETL process, which parses them itself; the
    -- product ones cast where they are copied).
    product_ids          text      NOT NULL,
    product_units        text      NOT NULL,
    product_revenue      text      NOT NULL,
    client_ids           text      NOT NULL,
    client_revenue       text      NOT NULL
);
-- The arrays are read whole and seldom: no compression to pay on every
-- load, no statistics on their elements.
ALTER TABLE marketplace.day_summaries
    ALTER product_ids SET STORAGE EXTERNAL, ALTER product_units SET STORAGE EXTERNAL, ALTER product_revenue SET STORAGE EXTERNAL,
    ALTER client_ids SET STORAGE EXTERNAL, ALTER client_revenue SET STORAGE EXTERNAL,
    ALTER product_ids SET STATISTICS 0, ALTER product_units SET STATISTICS 0, ALTER product_revenue SET STATISTICS 0,
    ALTER client_ids SET STATISTICS 0, ALTER client_revenue SET STATISTICS 0;
COMMENT ON TABLE marketplace.day_summaries IS 'Internal: one row per day with lines or loaded, written by the loader in the day''s transaction with the lines; absent when the lines changed otherwise (the marts then read the lines). Arrays of one group (gender_*, hour_*, product_*, client_*; the product and client ones stored as the text of the array) are parallel and sorted by their key.';
COMMENT ON COLUMN marketplace.day_summaries.purchase_date IS 'Business day.';
COMMENT ON COLUMN marketplace.day_summaries.lines IS 'Purchase lines of the day.';
COMMENT ON COLUMN marketplace.day_summaries.units IS 'sum(quantity).';
COMMENT ON COLUMN marketplace.day_summaries.revenue IS 'sum(total_price).';
COMMENT ON COLUMN marketplace.day_summaries.gross_revenue IS 'sum(quantity * price_per_item).';
COMMENT ON COLUMN marketplace.day_summaries.discount IS 'sum(quantity * discount_per_item).';
COMMENT ON COLUMN marketplace.day_summaries.clients IS 'Distinct clients of the day (= cardinality(client_ids)).';
COMMENT ON COLUMN marketplace.day_summaries.genders IS 'Genders with lines, sorted (F, M); gender_* are their lines, units, revenue, gross revenue, discount and distinct clients.';
COMMENT ON COLUMN marketplace.day_summaries.hours IS 'Hours of day with lines (seconds_from_midnight / 3600), ascending; hour_* are their lines, units, revenue and distinct clients.';
COMMENT ON COLUMN marketplace.day_summaries.product_ids IS 'Products sold, ascending, as an integer[] literal; product_units (bigint[]) and product_revenue (numeric[]) are their units and revenue.';
COMMENT ON COLUMN marketplace.day_summaries.client_ids IS 'Clients who bought, ascending, as an integer[] literal; client_revenue (numeric[]) is their revenue of the day.';
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP TABLE marketplace.day_summaries;
-- +goose StatementEnd
