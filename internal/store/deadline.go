package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"net"
	"time"

	"github.com/lib/pq"
)

// clientWait is the longest the client waits for the server in one read
// or write: its statement_timeout plus the same again (at most 5 s more,
// at least 1 s in all, for connecting and a loaded machine).
func clientWait(statementTimeout time.Duration) time.Duration {
	return max(statementTimeout+min(statementTimeout, 5*time.Second), time.Second)
}

// connector opens lib/pq connections whose every wait for the server is
// bounded on the client side. statement_timeout bounds a statement on the
// server, but a server that is frozen (stopped processes, a half-dead
// host, a network that drops packets) never sends the error; lib/pq then
// waits on the socket for ever, even after its context is cancelled (it
// only sends a cancel request, which a frozen server ignores too).
type connector struct {
	dsn  string
	wait time.Duration // longest wait for one read or write; 0: none
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	pc, err := pq.NewConnector(c.dsn)
	if err != nil {
		return nil, err
	}
	if c.wait > 0 {
		pc.Dialer(deadlineDialer{wait: c.wait})
	}
	return pc.Connect(ctx)
}

func (c *connector) Driver() driver.Driver { return &pq.Driver{} }

// deadlineDialer dials like lib/pq's default dialer and bounds every read
// and write of the connection.
type deadlineDialer struct{ wait time.Duration }

func (d deadlineDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d deadlineDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d deadlineDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nc, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &deadlineConn{Conn: nc, wait: d.wait}, nil
}

// deadlineConn gives every read and write its own deadline: the server
// must answer within the wait, since a statement it runs for longer is
// cancelled by its own statement_timeout anyway.
type deadlineConn struct {
	net.Conn
	wait time.Duration
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.wait)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	return n, c.explain(err)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.wait)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	return n, c.explain(err)
}

// explain names the bound in a timeout, which lib/pq passes on.
func (c *deadlineConn) explain(err error) error {
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return &serverSilentError{wait: c.wait, err: err}
	}
	return err
}

// serverSilentError: the server did not answer within the client-side
// bound. It is a net.Error, so IsUnavailable recognises it.
type serverSilentError struct {
	wait time.Duration
	err  error
}

func (e *serverSilentError) Error() string {
	return fmt.Sprintf("the database did not answer within %s (ETL_DB_STATEMENT_TIMEOUT and a margin): %v", e.wait, e.err)
}
func (e *serverSilentError) Unwrap() error   { return e.err }
func (e *serverSilentError) Timeout() bool   { return true }
func (e *serverSilentError) Temporary() bool { return true }
