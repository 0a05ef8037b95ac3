package store

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// freezer forwards TCP to a server until frozen; then it stops forwarding
// in both directions but keeps every connection open, like a PostgreSQL
// whose processes are stopped (the kernel still accepts and acknowledges).
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen chan struct{}
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target, frozen: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go f.serve()
	return f
}

func (f *freezer) freeze() { close(f.frozen) }

func (f *freezer) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			s, err := net.Dial("tcp", f.target)
			if err != nil {
				c.Close()
				return
			}
			go f.pipe(s, c)
			f.pipe(c, s)
		}()
	}
}

// pipe copies until frozen, then holds both ends open without reading.
func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		select {
		case <-f.frozen:
			<-make(chan struct{}) // hold for ever; the listener's close ends the test
		default:
		}
		_ = src.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-f.frozen:
				continue
			default:
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			dst.Close()
			return
		}
	}
}

func openVia(t testing.TB, dsn string, opt Options) *Store {
	t.Helper()
	opt.Location = time.UTC
	s, err := Open(context.Background(), dsn, opt, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// migratedStore is a store on a fresh, migrated database.
func migratedStore(t testing.TB) *Store {
	t.Helper()
	s := openVia(t, pgtest.NewDatabase(t), Options{StatementTimeout: time.Minute, LockTimeout: time.Minute})
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFrozenDatabaseFailsWithinTheStatementTimeout: a server that stops
// answering (issue 13: 60 s of stopped processes blocked the pass for the
// whole 60 s with a 5 s statement timeout) fails the call within twice the
// statement timeout, as a lost database.
func TestFrozenDatabaseFailsWithinTheStatementTimeout(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	u, _ := url.Parse(dsn)
	f := newFreezer(t, u.Host)
	u.Host = f.ln.Addr().String()
	s := openVia(t, u.String(), Options{StatementTimeout: 300 * time.Millisecond, LockTimeout: 300 * time.Millisecond})
	f.freeze()
	start := time.Now()
	var one int
	err := s.DB().QueryRowContext(context.Background(), `SELECT 1`).Scan(&one) // on the pool's open session
	took := time.Since(start)
	if err == nil || !IsUnavailable(err) {
		t.Fatalf("got %v, want the database unavailable", err)
	}
	if took > 30*time.Second {
		t.Fatalf("a frozen database held the call for %s", took)
	}
	t.Logf("frozen database: %v after %s", err, took.Round(time.Millisecond))
}

// TestSessionTimeouts: every session starts with the three timeouts, a
// sub-millisecond one rounded up (500µs became 0: no timeout at all).
func TestSessionTimeouts(t *testing.T) {
	s := openVia(t, pgtest.NewDatabase(t), Options{StatementTimeout: 1500*time.Millisecond + 500*time.Microsecond, LockTimeout: 500 * time.Microsecond, IdleInTransactionTimeout: 90 * time.Second})
	var st, lt, it string
	if err := s.DB().QueryRow(`SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout')`).Scan(&st, &lt, &it); err != nil {
		t.Fatal(err)
	}
	if st != "1501ms" || lt != "1ms" || it != "90s" {
		t.Fatalf("statement_timeout %s, lock_timeout %s, idle_in_transaction_session_timeout %s; want 1501ms, 1ms, 90s", st, lt, it)
	}
}
