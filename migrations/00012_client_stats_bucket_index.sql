-- +goose Up
-- +goose StatementBegin
-- The monetary tercile boundary is found in one m_bucket of client_stats
-- (a few hundred clients at most): an index on the bucket alone finds them,
-- and sorting them by monetary is instant. The (m_bucket, monetary) index
-- it replaces made every client_stats write compare numerics in a wide,
-- randomly filled index: about 40 % of writing client_stats, i.e. seconds
-- of a first update after a backfill and tens of milliseconds of a daily
-- pass (docs/benchmarks.md, Marts).
DROP INDEX marts.client_stats_monetary_idx;
CREATE INDEX client_stats_m_bucket_idx ON marts.client_stats (m_bucket);
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP INDEX marts.client_stats_m_bucket_idx;
CREATE INDEX client_stats_monetary_idx ON marts.client_stats (m_bucket, monetary);
-- +goose StatementEnd
