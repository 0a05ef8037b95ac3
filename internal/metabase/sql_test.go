package metabase

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// fixtureSQL loads fifteen months of purchase lines (2023-01-01 ..
// 2024-03-31, enough for the trailing-12-month assortment marts) from a
// client base that grows every day (so every month has a cohort), with
// rejected lines on some days, a day that failed to load and a day with no
// lines, the way the ETL would have recorded them.
const fixtureSQL = `
INSERT INTO marketplace.etl_runs (mode, status, finished_at) VALUES ('backfill', 'succeeded', now());

INSERT INTO marketplace.purchases (purchase_date, line_no, client_id, gender, product_id, quantity,
    price_per_item, discount_per_item, total_price, seconds_from_midnight, purchased_at, run_id)
SELECT d, n, c, CASE WHEN c % 3 = 0 THEN 'F' ELSE 'M' END, p, q, price, disc, q * (price - disc), s,
       d + make_interval(secs => s), 1
FROM generate_series(date '2023-01-01', date '2024-03-31', interval '1 day') AS g(ts),
     LATERAL (SELECT g.ts::date AS d) AS dd,
     generate_series(1, 12) AS n,
     LATERAL (SELECT 1 + abs(hashtext(d::text || '/' || n)) % (40 + (d - date '2023-01-01')) AS c,
                     1 + abs(hashtext('p' || d::text || '/' || n)) % 60 AS p,
                     1 + abs(hashtext('q' || d::text || '/' || n)) % 4 AS q,
                     abs(hashtext('s' || d::text || '/' || n)) % 86400 AS s) AS r,
     LATERAL (SELECT (5 + p * 2.5)::numeric(14,2) AS price,
                     CASE WHEN n % 4 = 0 THEN 1.25 ELSE 0 END::numeric(14,2) AS disc) AS m
WHERE d NOT IN (date '2024-02-10', date '2024-02-11')
  AND n <= 6 + extract(month FROM d)::int % 7;

INSERT INTO marketplace.rejected_purchases (purchase_date, line_no, reason, detail, raw, run_id)
SELECT d::date, 100 + k, CASE WHEN k = 1 THEN 'zero_quantity' ELSE 'total_mismatch' END, '', '{}', 1
FROM generate_series(date '2024-01-01', date '2024-03-31', interval '7 days') AS d, generate_series(1, 2) AS k;

INSERT INTO marketplace.day_loads (purchase_date, status, rows_fetched, rows_loaded, rows_rejected,
    rejected_by_reason, checksum, attempts, run_id, first_loaded_at, loaded_at, last_error)
SELECT d, CASE WHEN d = date '2024-02-10' THEN 'failed' ELSE 'loaded' END,
       coalesce(l.n, 0) + coalesce(r.n, 0), coalesce(l.n, 0), coalesce(r.n, 0),
       coalesce(r.reasons, '{}'::jsonb), CASE WHEN d = date '2024-02-10' THEN NULL ELSE md5(d::text) END, 1, 1,
       CASE WHEN d = date '2024-02-10' THEN NULL ELSE d + interval '1 day 2 hours' END,
       CASE WHEN d = date '2024-02-10' THEN NULL ELSE d + interval '1 day 2 hours' END,
       CASE WHEN d = date '2024-02-10' THEN 'HTTP 503 after 5 attempts' END
FROM (SELECT g::date AS d FROM generate_series(date '2023-01-01', date '2024-03-31', interval '1 day') AS g) AS days
LEFT JOIN (SELECT purchase_date, count(*) AS n FROM marketplace.purchases GROUP BY 1) AS l ON l.purchase_date = d
LEFT JOIN (SELECT purchase_date, count(*) AS n, jsonb_object_agg(reason, cnt) AS reasons
           FROM (SELECT purchase_date, reason, count(*) AS cnt FROM marketplace.rejected_purchases GROUP BY 1, 2) x
           GROUP BY 1) AS r ON r.purchase_date = d;
`

// TestCardSQL runs every card's SQL against a migrated database with loaded
// data and refreshed marts, the date filter substituted the way Metabase
// does it (a condition on the qualified column, or 1 = 1 when unset), in a
// read-only transaction like the read-only role Metabase connects with.
func TestCardSQL(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	st, err := store.Open(ctx, dsn, store.Options{StatementTimeout: time.Minute, LockTimeout: time.Minute}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	db := st.DB()
	if _, err := db.ExecContext(ctx, fixtureSQL); err != nil {
		t.Fatalf("loading the fixture: %v", err)
	}
	refreshMarts(ctx, t, db)
	// The cards run as the read-only role docs/metabase.md creates: it may
	// read schema marts and nothing else, and nothing it runs can write.
	ro := readOnlyMartsRole(ctx, t, db, dsn)

	defs, err := Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		for _, c := range d.Cards {
			t.Run(c.Key, func(t *testing.T) {
				if c.DateTag != nil {
					checkDateColumn(ctx, t, db, c.DateTag)
				}
				cols, rows := runCard(ctx, t, ro, c, "1 = 1")
				if rows == 0 {
					t.Errorf("no rows without a date filter: the card would be empty on loaded data")
				}
				checkVisualization(t, c, cols)
				if c.DateTag == nil {
					return
				}
				col := fmt.Sprintf("%q.%q.%q", c.DateTag.Schema, c.DateTag.Table, c.DateTag.Column)
				if _, rows := runCard(ctx, t, ro, c, col+" BETWEEN date '2024-01-01' AND date '2024-02-29'"); rows == 0 {
					t.Errorf("no rows for January-February 2024")
				}
				runCard(ctx, t, ro, c, col+" BETWEEN date '2030-01-01' AND date '2030-12-31'") // empty range: must not fail
			})
		}
	}
}

// readOnlyMartsRole applies the read-only role SQL of docs/metabase.md
// (the role's name, its password, the database and the ETL's owner role
// substituted) and returns a pool connected as that role, after checking
// that it can read the marts and nothing else.
func readOnlyMartsRole(ctx context.Context, t *testing.T, db *sqlx.DB, dsn string) *sqlx.DB {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	role := "mb_cards_" + hex.EncodeToString(b)
	password := hex.EncodeToString(b) + "Pw"
	var dbName, owner string
	if err := db.QueryRowContext(ctx, `SELECT current_database(), current_user`).Scan(&dbName, &owner); err != nil {
		t.Fatal(err)
	}
	script := strings.NewReplacer(
		"marketplace_readonly", role,
		"marketplace_owner", owner,
		"DATABASE marketplace ", "DATABASE "+dbName+" ",
		"'change-me'", "'"+password+"'",
	).Replace(readOnlyRoleSQL(t))
	if _, err := db.ExecContext(ctx, script); err != nil {
		t.Fatalf("applying the read-only role SQL of docs/metabase.md: %v\n%s", err, script)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, password)
	ro, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ro.Close()
		// Roles are cluster-wide: drop it before the database goes.
		_, _ = db.ExecContext(context.Background(), fmt.Sprintf(`DROP OWNED BY %s`, role))
		_, _ = db.ExecContext(context.Background(), fmt.Sprintf(`DROP ROLE %s`, role))
	})

	// A mart created later (by a migration, as the owner) is readable too.
	if _, err := db.ExecContext(ctx, `CREATE TABLE marts.zz_later_mart AS SELECT 1 AS x`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.ExecContext(context.Background(), `DROP TABLE IF EXISTS marts.zz_later_mart`) })
	var x int
	if err := ro.GetContext(ctx, &x, `SELECT x FROM marts.zz_later_mart`); err != nil {
		t.Errorf("the read-only role cannot read a mart created after the grants: %v", err)
	}
	for _, check := range []struct{ what, query string }{
		{"read the raw schema", `SELECT has_schema_privilege('marketplace', 'USAGE')`},
		{"create temporary tables", `SELECT has_database_privilege(current_database(), 'TEMPORARY')`},
		{"create schemas", `SELECT has_database_privilege(current_database(), 'CREATE')`},
		{"create in marts", `SELECT has_schema_privilege('marts', 'CREATE')`},
		{"create in public", `SELECT has_schema_privilege('public', 'CREATE')`},
		{"take the ETL's advisory locks", `SELECT has_function_privilege('pg_try_advisory_lock(bigint)', 'EXECUTE')`},
		{"take transaction advisory locks", `SELECT has_function_privilege('pg_advisory_xact_lock(integer, integer)', 'EXECUTE')`},
		{"share the ETL's advisory locks", `SELECT has_function_privilege('pg_advisory_lock_shared(bigint)', 'EXECUTE')`},
	} {
		var can bool
		if err := ro.GetContext(ctx, &can, check.query); err != nil {
			t.Fatalf("connecting as the read-only role: %v", err)
		}
		if can {
			t.Errorf("the read-only role may %s", check.what)
		}
	}
	for _, denied := range []string{`SELECT pg_try_advisory_lock(1)`, `SELECT count(*) FROM marketplace.purchases`, `SELECT count(*) FROM marketplace.etl_runs`} {
		if _, err := ro.ExecContext(ctx, denied); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("the read-only role ran %s (err %v)", denied, err)
		}
	}
	// The ETL (the owner) still can.
	if _, err := db.ExecContext(ctx, `SELECT pg_advisory_xact_lock(1)`); err != nil {
		t.Errorf("the owner lost its advisory locks: %v", err)
	}
	return ro
}

// readOnlyRoleSQL is the SQL block under the readonly-role-sql marker of
// docs/metabase.md, so the documentation is what the test runs.
func readOnlyRoleSQL(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/metabase.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- readonly-role-sql -->")
	if !ok {
		t.Fatal("docs/metabase.md has no <!-- readonly-role-sql --> marker")
	}
	_, block, ok := strings.Cut(after, "```sql\n")
	if !ok {
		t.Fatal("docs/metabase.md: no ```sql block after the readonly-role-sql marker")
	}
	block, _, ok = strings.Cut(block, "```")
	if !ok {
		t.Fatal("docs/metabase.md: the read-only role SQL block is not closed")
	}
	return block
}

var tagRef = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

func runCard(ctx context.Context, t *testing.T, db *sqlx.DB, c Card, condition string) (cols []string, n int) {
	t.Helper()
	query := tagRef.ReplaceAllString(c.SQL, condition)
	tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		t.Fatalf("card SQL failed with filter %s: %v\n%s", condition, err, query)
	}
	defer rows.Close()
	cols, _ = rows.Columns()
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("card SQL failed with filter %s: %v\n%s", condition, err, query)
	}
	return cols, n
}

// checkDateColumn: a Metabase date filter needs a date or timestamp column.
func checkDateColumn(ctx context.Context, t *testing.T, db *sqlx.DB, tag *DateTag) {
	t.Helper()
	var typ string
	err := db.GetContext(ctx, &typ, `
		SELECT format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped`,
		tag.Schema, tag.Table, tag.Column)
	if err != nil {
		t.Fatalf("date filter column %s.%s.%s: %v", tag.Schema, tag.Table, tag.Column, err)
	}
	if typ != "date" && !strings.HasPrefix(typ, "timestamp") {
		t.Errorf("date filter column %s.%s.%s is %s, not a date", tag.Schema, tag.Table, tag.Column, typ)
	}
}

// checkVisualization: the columns a chart is told to plot must exist.
func checkVisualization(t *testing.T, c Card, cols []string) {
	t.Helper()
	have := map[string]bool{}
	for _, col := range cols {
		have[col] = true
	}
	for _, key := range []string{"graph.dimensions", "graph.metrics", "pie.dimension", "pie.metric"} {
		var names []string
		switch v := c.Visualization[key].(type) {
		case string:
			names = []string{v}
		case []any:
			for _, x := range v {
				names = append(names, fmt.Sprint(x))
			}
		}
		for _, name := range names {
			if !have[name] {
				t.Errorf("visualization %s names column %q, the SQL returns %v", key, name, cols)
			}
		}
	}
	settings, _ := c.Visualization["column_settings"].(map[string]any)
	for ref := range settings {
		var r []string
		if err := json.Unmarshal([]byte(ref), &r); err != nil || len(r) != 2 || r[0] != "name" || !have[r[1]] {
			t.Errorf("visualization column_settings key %s is not [\"name\", <a column of %v>]", ref, cols)
		}
	}
}
