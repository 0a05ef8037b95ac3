-- +goose Up
-- +goose StatementBegin
-- A second row in marketplace.marts_lock: the lock of the day half.
-- A drain behind a pass's loads (the day half only, before the client
-- half's first update) used to hold the one lock for its whole length, so
-- a pass whose loads ended in the middle of such a drain waited for it
-- (up to a second after a year's backfill) before its final update could
-- start. The drain now holds the day half's lock and lets go of the main
-- one at once: the final update starts its client half, and only its day
-- half waits for the drain. Both are taken in the same order (true, then
-- false) everywhere; the read-only role can take neither.
ALTER TABLE marketplace.marts_lock DROP CONSTRAINT marts_lock_id_check;
INSERT INTO marketplace.marts_lock (id) VALUES (false);
COMMENT ON TABLE marketplace.marts_lock IS 'Two rows, locked FOR UPDATE (a row lock needs UPDATE privilege, which the read-only role lacks): true by the process updating the marts, for the whole update, so that updates run one at a time; false by the transaction updating the day marts. Lock every row to hold all updates off.';
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DELETE FROM marketplace.marts_lock WHERE NOT id;
ALTER TABLE marketplace.marts_lock ADD CONSTRAINT marts_lock_id_check CHECK (id);
COMMENT ON TABLE marketplace.marts_lock IS 'One row, locked FOR UPDATE by the process maintaining the marts (a row lock needs UPDATE privilege, which the read-only role lacks), so that drains run one at a time.';
-- +goose StatementEnd
