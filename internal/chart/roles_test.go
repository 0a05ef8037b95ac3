package chart

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
	"github.com/marketplace-etl/marketplace-etl/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// render runs `helm template` on the chart with --set arguments and returns the manifests.
func render(t *testing.T, set ...string) [][]byte {
	t.Helper()
	root := repoRoot(t)
	args := []string{"template", "rel", filepath.Join(root, "charts", "marketplace"), "--namespace", "etl", "--kube-version", kubeVersion}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helmBin(t, root), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return splitDocuments(out)
}

// initScript is the bundled PostgreSQL's first-start script, taken from the rendered chart.
func initScript(t *testing.T, set ...string) string {
	t.Helper()
	for _, doc := range render(t, set...) {
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal(doc, &cm); err != nil || cm.Kind != "ConfigMap" || cm.Name != "rel-marketplace-postgresql-init" {
			continue
		}
		if s := cm.Data["10-roles.sh"]; s != "" {
			return s
		}
	}
	t.Fatal("no ConfigMap rel-marketplace-postgresql-init with 10-roles.sh in the rendered chart")
	return ""
}

// asRole returns dbURL with another user (the test cluster trusts loopback connections).
func asRole(t *testing.T, dbURL, role string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

// TestInitScriptRoles runs the bundled PostgreSQL's init script on a real server, as the image's
// entrypoint would, then the ETL's migrations as the ETL role, and checks what each role may do.
func TestInitScriptRoles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbURL := pgtest.NewDatabase(t)
	u, _ := url.Parse(dbURL)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	sfx := hex.EncodeToString(b) // roles are cluster-wide: unique names per run
	etl, ro, mb, mbDB := "etl_"+sfx, "ro_"+sfx, "mb_"+sfx, "mbdb_"+sfx
	script := initScript(t, "postgresql.auth.username="+etl, "postgresql.auth.readonlyUsername="+ro,
		"postgresql.auth.metabaseUsername="+mb, "postgresql.auth.metabaseDatabase="+mbDB)

	admin, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + mbDB + " WITH (FORCE)") })

	runScript := func() {
		t.Helper()
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Env = append(os.Environ(), "PGHOST="+u.Hostname(), "PGPORT="+u.Port(),
			"POSTGRES_USER="+u.User.Username(), "POSTGRES_DB="+strings.TrimPrefix(u.Path, "/"),
			"ETL_USER="+etl, "ETL_PASSWORD=etl-secret", "READONLY_USER="+ro, "READONLY_PASSWORD=ro-secret",
			"METABASE_DB_USER="+mb, "METABASE_DB_PASSWORD=mb-secret", "METABASE_DB="+mbDB)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("init script: %v\n%s", err, out)
		}
	}
	runScript()
	runScript() // idempotent: an operator may run it again by hand

	var super, createRole, createDB bool
	if err := admin.QueryRow(`SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1`, etl).Scan(&super, &createRole, &createDB); err != nil {
		t.Fatal(err)
	}
	if super || createRole || createDB {
		t.Errorf("ETL role %s: superuser=%v createrole=%v createdb=%v, expected none", etl, super, createRole, createDB)
	}
	var mbOwner string
	if err := admin.QueryRow(`SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1`, mbDB).Scan(&mbOwner); err != nil || mbOwner != mb {
		t.Errorf("Metabase database %s owner %q (%v), expected %s", mbDB, mbOwner, err, mb)
	}

	// the ETL's own migrations, as the ETL role (they take advisory locks and create the tables)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, asRole(t, dbURL, etl), store.Options{StatementTimeout: time.Minute, LockTimeout: time.Minute, Location: time.UTC}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrations as the ETL role: %v", err)
	}
	etlDB := st.DB()
	// populate the materialized views so that reading them tests privileges, not emptiness
	rows, err := etlDB.QueryContext(ctx, `SELECT format('REFRESH MATERIALIZED VIEW %I.%I', schemaname, matviewname) FROM pg_matviews WHERE schemaname = 'marts'`)
	if err != nil {
		t.Fatal(err)
	}
	var refresh []string
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			t.Fatal(err)
		}
		refresh = append(refresh, q)
	}
	rows.Close()
	for _, q := range refresh {
		if _, err := etlDB.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s as the ETL role: %v", q, err)
		}
	}
	var foreign []string
	if err := etlDB.SelectContext(ctx, &foreign, `SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname IN ('marketplace', 'marts') AND pg_get_userbyid(c.relowner) <> $1`, etl); err != nil {
		t.Fatal(err)
	}
	if len(foreign) > 0 {
		t.Errorf("objects of the ETL's schemas not owned by the ETL role: %v", foreign)
	}
	// a table the ETL creates later in marts is readable through the default privileges
	if _, err := etlDB.ExecContext(ctx, `CREATE TABLE marts.later_mart (i int)`); err != nil {
		t.Fatal(err)
	}

	reader, err := sql.Open("postgres", asRole(t, dbURL, ro))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	reader.SetMaxOpenConns(1) // one session: the SET below applies to every statement
	var marts []string
	if err := etlDB.SelectContext(ctx, &marts, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'marts' AND c.relkind IN ('r', 'v', 'm') ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if len(marts) < 2 {
		t.Fatalf("only %v in schema marts after the migrations", marts)
	}
	for _, m := range marts {
		if _, err := reader.ExecContext(ctx, "SELECT * FROM "+m+" LIMIT 1"); err != nil {
			t.Errorf("read-only role cannot read %s: %v", m, err)
		}
	}
	// the role's read-only default is a setting it could change: check the privileges without it
	if _, err := reader.ExecContext(ctx, `SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE`); err != nil {
		t.Fatal(err)
	}
	denied := map[string]string{
		"read the raw schema":              `SELECT * FROM marketplace.purchases LIMIT 1`,
		"resolve a raw table's name":       `SELECT 'marketplace.day_loads'::regclass`,
		"create a TEMP table":              `CREATE TEMP TABLE scratch (i int)`,
		"create a table in marts":          `CREATE TABLE marts.scratch (i int)`,
		"create a table in public":         `CREATE TABLE public.scratch (i int)`,
		"create a schema":                  `CREATE SCHEMA scratch`,
		"write a mart":                     `UPDATE marts.abc_xyz_settings SET abc_a_max = abc_a_max`,
		"take an advisory lock":            `SELECT pg_advisory_lock(1)`,
		"try an advisory lock":             `SELECT pg_try_advisory_xact_lock(1)`,
		"read the migrations' bookkeeping": `SELECT * FROM public.marketplace_etl_schema_migrations`,
	}
	for what, q := range denied {
		_, err := reader.ExecContext(ctx, q)
		var pqErr *pq.Error
		if !errors.As(err, &pqErr) || pqErr.Code != "42501" {
			t.Errorf("read-only role may %s: %q gave %v, expected permission denied (42501)", what, q, err)
		}
	}
	var roTimeout string
	if err := reader.QueryRowContext(ctx, `SHOW statement_timeout`).Scan(&roTimeout); err != nil || roTimeout != "5min" {
		t.Errorf("read-only role's statement_timeout %q (%v), expected 5min", roTimeout, err)
	}

	// the Metabase role owns its database and cannot reach the warehouse
	mbConn, err := sql.Open("postgres", asRole(t, dbURL, mb))
	if err != nil {
		t.Fatal(err)
	}
	defer mbConn.Close()
	var pqErr *pq.Error
	if err := mbConn.PingContext(ctx); !errors.As(err, &pqErr) || pqErr.Code != "42501" {
		t.Errorf("Metabase role connecting to the warehouse: %v, expected permission denied (42501)", err)
	}
}
