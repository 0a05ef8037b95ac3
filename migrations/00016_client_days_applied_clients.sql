-- +goose Up
-- +goose StatementBegin
-- When a pass replaces a day that client_stats already shows (its content
-- changed upstream, or it was reloaded), the client half must also find the
-- clients who bought on the old day and not on the new one: their rows lose
-- the day. It found them by scanning client_stats for the rows whose days
-- hold the day, 0.4-0.5 s on a year of history, most of such a daily pass.
-- Each day the client rows show now keeps its clients, which such an update
-- reads by primary key instead. The days already recorded get theirs from
-- client_stats, which shows exactly them (both change in one transaction).
ALTER TABLE marts.client_days_applied ADD COLUMN client_ids text;
UPDATE marts.client_days_applied a SET client_ids = c.ids
FROM (SELECT date '2000-01-01' + d AS day, array_agg(client_id ORDER BY client_id)::text AS ids
      FROM marts.client_stats, unnest(days) AS d
      GROUP BY d) c
WHERE c.day = a.day;
UPDATE marts.client_days_applied SET client_ids = '{}' WHERE client_ids IS NULL;
ALTER TABLE marts.client_days_applied ALTER client_ids SET NOT NULL;
COMMENT ON COLUMN marts.client_days_applied.client_ids IS 'The clients with a purchase that day as client_stats shows them, ascending: the text of an integer[] literal (read it as client_ids::integer[]).';
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
ALTER TABLE marts.client_days_applied DROP COLUMN client_ids;
-- +goose StatementEnd
