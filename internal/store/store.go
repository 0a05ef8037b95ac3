// Package store keeps marketplace-etl's data in PostgreSQL: the schema
// (embedded goose migrations), the per-day load transaction, and the
// bookkeeping of days and runs.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/marketplace-etl/marketplace-etl/migrations"
)

// Store is a connection pool to the marketplace database.
type Store struct {
	db  *sqlx.DB
	log *slog.Logger
	opt Options
}

// Options bound what a stuck database can cost.
type Options struct {
	StatementTimeout time.Duration
	LockTimeout      time.Duration
	// IdleInTransactionTimeout ends a session whose transaction waits on
	// the client longer than this (the client froze or lost its network):
	// the server then releases the day's lock. It must exceed the longest
	// legitimate wait inside a day's transaction, the HTTP body.
	IdleInTransactionTimeout time.Duration
	// Location is the business time zone: purchased_at is a line's date and
	// time of day there.
	Location *time.Location
}

// Open connects to dsn (a URL, key=value pairs, or "" for the libpq PG*
// environment variables) and checks the connection.
func Open(ctx context.Context, dsn string, opt Options, log *slog.Logger) (*Store, error) {
	dsn = withTimeouts(dsn, opt)
	if _, err := pq.NewConnector(dsn); err != nil {
		return nil, fmt.Errorf("opening the database: %w", describe(err))
	}
	c := &connector{dsn: dsn}
	if opt.StatementTimeout > 0 {
		c.wait = clientWait(opt.StatementTimeout)
	}
	db := sqlx.NewDb(sql.OpenDB(c), "postgres")
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, &UnavailableError{Err: fmt.Errorf("connecting to the database: %w", describe(err))}
	}
	return &Store{db: db, log: log, opt: opt}, nil
}

// withTimeouts makes every session of the pool start with the statement
// and lock timeouts, so no query of a pass (bookkeeping and migrations
// included) can hang a CronJob on a stuck database. lib/pq sends keys it
// does not know to the server as run-time parameters.
func withTimeouts(dsn string, opt Options) string {
	params := map[string]string{}
	for k, d := range map[string]time.Duration{"statement_timeout": opt.StatementTimeout, "lock_timeout": opt.LockTimeout,
		"idle_in_transaction_session_timeout": opt.IdleInTransactionTimeout} {
		if d > 0 {
			params[k] = millis(d)
		}
	}
	if len(params) == 0 {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn // Open reports the malformed URL
		}
		q := u.Query()
		for k, v := range params {
			if !q.Has(k) {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	// key=value pairs, or "" for the PG* environment variables.
	out := dsn
	for _, k := range []string{"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"} {
		if v, ok := params[k]; ok && !strings.Contains(dsn, k+"=") {
			out += " " + k + "=" + v
		}
	}
	return strings.TrimSpace(out)
}

// millis is d in whole milliseconds for PostgreSQL, rounded up: 500µs
// must not become 0, which means "no timeout".
func millis(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}

// DB exposes the pool to packages that run their own SQL (marts, checks).
func (s *Store) DB() *sqlx.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error { return s.db.Close() }

// UnavailableError means the database could not be reached or went away:
// worth retrying later.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// IsUnavailable tells whether err is a lost or refused connection, a server
// shutting down, or a timeout: the database, not the data, is at fault.
func IsUnavailable(err error) bool {
	var u *UnavailableError
	if errors.As(err, &u) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		switch pe.Code.Class() {
		case "08", "53", "57": // connection exception, insufficient resources, operator intervention (shutdown, statement timeout)
			return true
		}
		switch pe.Code {
		case "40001", "40P01", "55P03": // serialization failure, deadlock, lock not available (lock_timeout)
			return true
		}
	}
	msg := err.Error()
	return strings.Contains(msg, "driver: bad connection") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "unexpected EOF") || strings.Contains(msg, "broken pipe")
}

// describe strips nothing but makes sure no DSN with a password is echoed:
// lib/pq errors never include the DSN, but url parse errors do.
func describe(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "://") && strings.Contains(msg, "@") {
		return errors.New("invalid connection string (check DATABASE_URL)")
	}
	return err
}

// migrationsTable is goose's bookkeeping table, kept beside our schema.
const migrationsTable = "public.marketplace_etl_schema_migrations"

func (s *Store) provider() (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectPostgres, s.db.DB, migrations.FS,
		goose.WithSessionLocker(locker), goose.WithTableName(migrationsTable), goose.WithDisableGlobalRegistry(true))
}

// Migrate applies pending migrations under a PostgreSQL advisory lock, so
// pods starting together apply each migration once.
func (s *Store) Migrate(ctx context.Context) error {
	p, err := s.provider()
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	for _, r := range results {
		s.log.Info("applied migration", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration.Round(time.Millisecond))
	}
	return nil
}

// MigrationState is one migration and whether it is applied.
type MigrationState struct {
	Version   int64
	File      string
	Applied   bool
	AppliedAt time.Time
}

// MigrationStatus lists every embedded migration.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	p, err := s.provider()
	if err != nil {
		return nil, fmt.Errorf("preparing migrations: %w", err)
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading migration status: %w", err)
	}
	out := make([]MigrationState, 0, len(st))
	for _, m := range st {
		out = append(out, MigrationState{Version: m.Source.Version, File: m.Source.Path, Applied: m.State == goose.StateApplied, AppliedAt: m.AppliedAt})
	}
	return out, nil
}

// SchemaVersions returns the database's schema version and the newest this
// binary carries.
func (s *Store) SchemaVersions(ctx context.Context) (current, latest int64, err error) {
	p, err := s.provider()
	if err != nil {
		return 0, 0, fmt.Errorf("preparing migrations: %w", err)
	}
	return p.GetVersions(ctx)
}

// CheckWritable verifies that the database accepts the writes of a pass,
// in a transaction it rolls back: a read-only database (a standby,
// default_transaction_read_only, a role without the privileges) answers
// every query of check but fails the first load. The transaction is begun
// with a plain BEGIN: database/sql's BeginTx makes lib/pq send BEGIN READ
// WRITE, which would hide default_transaction_read_only.
func (s *Store) CheckWritable(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("checking that the database accepts writes: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		return fmt.Errorf("checking that the database accepts writes: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`) //nolint:errcheck // nothing to keep either way
	for _, q := range []string{
		`INSERT INTO marketplace.etl_runs (mode, version, host) VALUES ('run', 'check', 'check')`,
		`INSERT INTO marketplace.purchases SELECT * FROM marketplace.purchases WHERE false`,
		`INSERT INTO marketplace.rejected_purchases SELECT * FROM marketplace.rejected_purchases WHERE false`,
		`INSERT INTO marketplace.day_loads SELECT * FROM marketplace.day_loads WHERE false`,
		`UPDATE marketplace.day_loads SET status = status WHERE false`,
		`DELETE FROM marketplace.purchases WHERE false`,
		`DELETE FROM marketplace.rejected_purchases WHERE false`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("the database does not accept writes: %w", err)
		}
	}
	return nil
}
