// Package pgtest gives tests a real, throw-away PostgreSQL.
//
// When TEST_DATABASE_URL is set it is used as the server; otherwise the first
// call starts a private cluster with initdb and pg_ctl (as the postgres user
// when running as root) on a free loopback port, and the test binary's
// TestMain stops it. Every test gets its own fresh database.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq" // database/sql driver
)

// Cluster is a running PostgreSQL server the tests may create databases on.
type Cluster struct {
	// AdminURL connects to the maintenance database as a superuser.
	AdminURL string
	// Port is the TCP port on 127.0.0.1 (0 when TEST_DATABASE_URL is used).
	Port int

	dataDir string
	runAs   *user.User
	owned   bool
}

var (
	shared    *Cluster
	sharedErr error
	once      sync.Once
)

// Shared returns the cluster of this test binary, starting it on first use.
func Shared() (*Cluster, error) {
	once.Do(func() { shared, sharedErr = start() })
	return shared, sharedErr
}

// Main is for TestMain: it runs the tests and stops the cluster afterwards.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

// NewDatabase creates an empty database for one test, dropped when it ends,
// and returns its URL. With -short, which runs no external program, it
// skips the test.
func NewDatabase(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL: runs without -short (make test-go)")
	}
	c, err := Shared()
	if err != nil {
		t.Fatalf("starting test PostgreSQL: %v", err)
	}
	u, err := c.CreateDatabase()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DropDatabase(u) })
	return u
}

// CreateDatabase creates a fresh database and returns its URL.
func (c *Cluster) CreateDatabase() (string, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	db, err := sql.Open("postgres", c.AdminURL)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name + " TEMPLATE template0"); err != nil {
		return "", fmt.Errorf("creating test database: %w", err)
	}
	return withDatabase(c.AdminURL, name), nil
}

// DropDatabase drops a database made by CreateDatabase, ending its sessions.
func (c *Cluster) DropDatabase(dbURL string) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return
	}
	db, err := sql.Open("postgres", c.AdminURL)
	if err != nil {
		return
	}
	defer db.Close()
	_, _ = db.Exec("DROP DATABASE IF EXISTS " + strings.TrimPrefix(u.Path, "/") + " WITH (FORCE)")
}

func withDatabase(base, name string) string {
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

// serverBinary finds a PostgreSQL server program on PATH, else where Debian
// installs it (/usr/lib/postgresql/VERSION/bin, outside PATH), newest first.
func serverBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(found) == 0 {
		return "", fmt.Errorf("%s is neither on PATH nor in /usr/lib/postgresql/*/bin", name)
	}
	sort.Slice(found, func(i, j int) bool { return pgVersion(found[i]) > pgVersion(found[j]) })
	return found[0], nil
}

// pgVersion is the major version in /usr/lib/postgresql/VERSION/bin/NAME.
func pgVersion(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

func start() (*Cluster, error) {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return &Cluster{AdminURL: u}, nil
	}
	initdb, err := serverBinary("initdb")
	if err != nil {
		return nil, fmt.Errorf("no TEST_DATABASE_URL and no initdb (install the PostgreSQL server binaries): %w", err)
	}
	pgctl, err := serverBinary("pg_ctl")
	if err != nil {
		return nil, err
	}
	c := &Cluster{owned: true}
	if os.Geteuid() == 0 {
		if c.runAs, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user for initdb: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c.dataDir = filepath.Join(dir, "data")
	if err := c.chown(dir); err != nil {
		return nil, err
	}
	if out, err := c.command(initdb, "-D", c.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	for attempt := 0; ; attempt++ {
		c.Port, err = freePort()
		if err != nil {
			return nil, err
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", c.Port, dir)
		out, err := c.command(pgctl, "-D", c.dataDir, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start").CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 3 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			return nil, fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, log)
		}
	}
	c.AdminURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
	return c, nil
}

// DataDir is where the owned cluster keeps its files.
func (c *Cluster) DataDir() string { return c.dataDir }

// Restart restarts the server in place (fast shutdown), as an operator or a
// crash would; sessions in flight are cut.
func (c *Cluster) Restart(ctx context.Context) error {
	if !c.owned {
		return fmt.Errorf("cannot restart a server given by TEST_DATABASE_URL")
	}
	pgctl, _ := serverBinary("pg_ctl")
	// -l: the restarted server must log to the file, not to pg_ctl's output
	// pipes, or it would hold them open and CombinedOutput would never return.
	cmd := c.command(pgctl, "-D", c.dataDir, "-l", filepath.Join(filepath.Dir(c.dataDir), "log"), "-m", "fast", "-w", "-t", "60", "restart")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl restart: %w: %s", err, out)
	}
	return nil
}

// Stop stops a cluster this package started and removes its files.
func (c *Cluster) Stop() {
	if !c.owned {
		return
	}
	pgctl, _ := serverBinary("pg_ctl")
	_ = c.command(pgctl, "-D", c.dataDir, "-m", "immediate", "-w", "stop").Run()
	_ = os.RemoveAll(filepath.Dir(c.dataDir))
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.runAs != nil {
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = os.TempDir()
	}
	return cmd
}

func (c *Cluster) chown(dir string) error {
	if c.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.runAs.Uid)
	gid, _ := strconv.Atoi(c.runAs.Gid)
	return os.Chown(dir, uid, gid)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitReady polls until the server accepts connections or ctx ends.
func WaitReady(ctx context.Context, dbURL string) error {
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		if err := db.PingContext(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
