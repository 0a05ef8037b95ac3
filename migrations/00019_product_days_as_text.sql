-- +goose Up
-- +goose StatementBegin
-- marts.product_days holds each day's products, units and revenues as
-- arrays, copied from the day's summary, where the loader keeps them as
-- the text of their array literals. The copy parsed them (an array_in per
-- column, about 1.4 ms a day) and the month totals, summed in the ETL
-- process, printed them back to text (an array_out each, about 1 ms a
-- day): about a third of the day marts' work, 0.9 s of server CPU for a
-- year's backfill (docs/benchmarks.md, "Fifth round"). They are now kept
-- as that text, copied as is; the statements and views that read them
-- parse them there, as for day_summaries. product_day keeps its columns.
DROP VIEW marts.product_day;
ALTER TABLE marts.product_days
    ALTER product_ids TYPE text USING product_ids::text,
    ALTER units TYPE text USING units::text,
    ALTER revenue TYPE text USING revenue::text;
-- A change of type resets the storage to the type's: back to no
-- compression attempt, which these lists of numbers never pass
-- (migration 00017).
ALTER TABLE marts.product_days ALTER product_ids SET STORAGE EXTERNAL, ALTER units SET STORAGE EXTERNAL,
    ALTER revenue SET STORAGE EXTERNAL;
COMMENT ON COLUMN marts.product_days.product_ids IS 'Products sold that day, ascending: the text of an integer[] literal (read it as product_ids::integer[]).';
COMMENT ON COLUMN marts.product_days.units IS 'Units (sum of quantity) of each product that day: the text of a bigint[] literal.';
COMMENT ON COLUMN marts.product_days.revenue IS 'Revenue (sum of total_price) of each product that day: the text of a numeric[] literal.';

CREATE VIEW marts.product_day AS
SELECT d.day, u.product_id, u.units, u.revenue
FROM marts.product_days d, unnest(d.product_ids::integer[], d.units::bigint[], d.revenue::numeric[]) AS u(product_id, units, revenue);
COMMENT ON VIEW marts.product_day IS 'Internal helper, grain: day and product sold that day (marts.product_days, one row per product).';
COMMENT ON COLUMN marts.product_day.day IS 'Business day.';
COMMENT ON COLUMN marts.product_day.product_id IS 'Product id.';
COMMENT ON COLUMN marts.product_day.units IS 'Units (sum of quantity) that day.';
COMMENT ON COLUMN marts.product_day.revenue IS 'Revenue (sum of total_price) that day.';
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP VIEW marts.product_day;
ALTER TABLE marts.product_days
    ALTER product_ids TYPE integer[] USING product_ids::integer[],
    ALTER units TYPE bigint[] USING units::bigint[],
    ALTER revenue TYPE numeric[] USING revenue::numeric[];
CREATE VIEW marts.product_day AS
SELECT d.day, u.product_id, u.units, u.revenue
FROM marts.product_days d, unnest(d.product_ids, d.units, d.revenue) AS u(product_id, units, revenue);
-- +goose StatementEnd
