-- +goose Up
-- +goose StatementBegin
CREATE SCHEMA IF NOT EXISTS marketplace;

COMMENT ON SCHEMA marketplace IS 'Raw purchase lines loaded from the Marketplace API by marketplace-etl, and the bookkeeping of each load.';

-- One row per invocation of marketplace-etl run/backfill.
CREATE TABLE marketplace.etl_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mode          text        NOT NULL CHECK (mode IN ('run', 'backfill')),
    range_from    date,
    range_to      date,
    shard_index   integer     NOT NULL DEFAULT 0,
    shard_count   integer     NOT NULL DEFAULT 1,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    status        text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    error         text,
    days_loaded    integer    NOT NULL DEFAULT 0,
    days_unchanged integer    NOT NULL DEFAULT 0,
    days_no_data   integer    NOT NULL DEFAULT 0,
    days_failed    integer    NOT NULL DEFAULT 0,
    rows_loaded   bigint      NOT NULL DEFAULT 0,
    rows_rejected bigint      NOT NULL DEFAULT 0,
    version       text        NOT NULL DEFAULT '',
    host          text        NOT NULL DEFAULT ''
);
COMMENT ON TABLE marketplace.etl_runs IS 'One row per marketplace-etl run or backfill invocation: mode, date range, timing, outcome.';

-- One row per business date ever attempted.
CREATE TABLE marketplace.day_loads (
    purchase_date      date        PRIMARY KEY,
    status             text        NOT NULL CHECK (status IN ('loaded', 'no_data', 'failed')),
    rows_fetched       integer     NOT NULL DEFAULT 0,
    rows_loaded        integer     NOT NULL DEFAULT 0,
    rows_rejected      integer     NOT NULL DEFAULT 0,
    rejected_by_reason jsonb       NOT NULL DEFAULT '{}'::jsonb,
    checksum           text,
    checksum_changes   integer     NOT NULL DEFAULT 0,
    attempts           integer     NOT NULL DEFAULT 0,
    last_error         text,
    run_id             bigint,
    first_loaded_at    timestamptz,
    loaded_at          timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE marketplace.day_loads IS 'Load state of each business date: status, row counts, order-independent content checksum, attempts and last error.';
COMMENT ON COLUMN marketplace.day_loads.status IS 'loaded: the day''s rows are in purchases; no_data: the API has no data for the day (before 2022-01-01); failed: the last attempt failed (see last_error).';
COMMENT ON COLUMN marketplace.day_loads.checksum IS 'Order-independent checksum of the day''s content as sent by the API; an equal re-fetch leaves the day untouched.';
COMMENT ON COLUMN marketplace.day_loads.checksum_changes IS 'How many times a re-fetch of the day returned different content and replaced it.';
COMMENT ON COLUMN marketplace.day_loads.rejected_by_reason IS 'Rejected lines of the day per reason code, e.g. {"zero_quantity": 98}.';

-- One row per accepted purchase line. There is no natural key in the source:
-- identical lines of one day are distinct purchases, so a line is identified
-- by its day and its position in that day's load. The primary key leads with
-- purchase_date, so replacing a day is an index range delete, never a scan.
CREATE TABLE marketplace.purchases (
    purchase_date         date          NOT NULL,
    line_no               integer       NOT NULL,
    client_id             integer       NOT NULL,
    gender                char(1)       NOT NULL CHECK (gender IN ('M', 'F')),
    product_id            integer       NOT NULL,
    quantity              integer       NOT NULL CHECK (quantity > 0),
    price_per_item        numeric(14,2) NOT NULL CHECK (price_per_item >= 0),
    discount_per_item     numeric(14,2) NOT NULL CHECK (discount_per_item >= 0),
    total_price           numeric(16,2) NOT NULL CHECK (total_price >= 0),
    seconds_from_midnight integer       NOT NULL CHECK (seconds_from_midnight BETWEEN 0 AND 86399),
    purchased_at          timestamptz   NOT NULL,
    run_id                bigint        NOT NULL,
    PRIMARY KEY (purchase_date, line_no)
);
COMMENT ON TABLE marketplace.purchases IS 'Accepted purchase lines, one row per line the API sent for a business day. Identical lines are distinct purchases and are never de-duplicated.';
COMMENT ON COLUMN marketplace.purchases.purchase_date IS 'Business date the line was requested and sold on (the API''s purchase_datetime).';
COMMENT ON COLUMN marketplace.purchases.line_no IS 'Position of the line within its day''s load (1..n); stable until the day''s content changes upstream.';
COMMENT ON COLUMN marketplace.purchases.seconds_from_midnight IS 'Time of day of the purchase (the API''s purchase_time_as_seconds_from_midnight).';
COMMENT ON COLUMN marketplace.purchases.purchased_at IS 'purchase_date + seconds_from_midnight in the business time zone (ETL_TIMEZONE).';
COMMENT ON COLUMN marketplace.purchases.total_price IS 'quantity * (price_per_item - discount_per_item); 0 for free lines (discount equals price).';
COMMENT ON COLUMN marketplace.purchases.run_id IS 'etl_runs.id of the invocation that loaded the line.';


-- Every line that failed validation, verbatim, with the reason.
CREATE TABLE marketplace.rejected_purchases (
    purchase_date date        NOT NULL,
    line_no       integer     NOT NULL,
    reason        text        NOT NULL,
    detail        text        NOT NULL DEFAULT '',
    raw           text        NOT NULL,
    run_id        bigint      NOT NULL,
    rejected_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (purchase_date, line_no)
);
COMMENT ON TABLE marketplace.rejected_purchases IS 'Lines the API sent that failed validation, kept verbatim with a reason code; nothing is dropped silently.';
COMMENT ON COLUMN marketplace.rejected_purchases.purchase_date IS 'The business date that was requested (not necessarily the date inside the line).';
COMMENT ON COLUMN marketplace.rejected_purchases.reason IS 'Reason code: not_object, all_null, missing_field, null_field, wrong_type, invalid_gender, date_mismatch, time_out_of_range, negative_value, discount_above_price, total_mismatch, zero_quantity.';
COMMENT ON COLUMN marketplace.rejected_purchases.raw IS 'The JSON element exactly as the API sent it.';
-- +goose StatementEnd

-- +goose Down
DROP SCHEMA marketplace CASCADE;
