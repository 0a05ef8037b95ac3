-- +goose Up
-- +goose StatementBegin
-- The long arrays kept as text (a day summary's product and client arrays,
-- 30-40 KB each; a recorded day's clients) are lists of numbers that
-- PostgreSQL's TOAST compression (pglz) cannot shrink by the quarter it
-- requires, so every value was stored uncompressed after a full, failed
-- compression attempt: about 8 ms of server CPU per loaded day (a year's
-- backfill: some 3 s, a third of what the server did beyond the COPY of
-- the lines), and 0.7 s in the first client update after it. EXTERNAL
-- stores them out of line as before, without the attempt: the same bytes
-- on disk (docs/benchmarks.md, "Fourth round").
ALTER TABLE marketplace.day_summaries
    ALTER product_ids SET STORAGE EXTERNAL,
    ALTER product_units SET STORAGE EXTERNAL,
    ALTER product_revenue SET STORAGE EXTERNAL,
    ALTER client_ids SET STORAGE EXTERNAL,
    ALTER client_revenue SET STORAGE EXTERNAL;
ALTER TABLE marts.client_days_applied ALTER client_ids SET STORAGE EXTERNAL;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
ALTER TABLE marketplace.day_summaries
    ALTER product_ids SET STORAGE EXTENDED,
    ALTER product_units SET STORAGE EXTENDED,
    ALTER product_revenue SET STORAGE EXTENDED,
    ALTER client_ids SET STORAGE EXTENDED,
    ALTER client_revenue SET STORAGE EXTENDED;
ALTER TABLE marts.client_days_applied ALTER client_ids SET STORAGE EXTENDED;
-- +goose StatementEnd
