// Command bench measures marketplace-etl against the fastest a client can load
// the same rows into PostgreSQL (psql \copy) and against the loader the
// original used (multi-row INSERT of 100 rows in autocommit), in one run, on
// the same data. hack/bench.sh starts the throw-away PostgreSQL and the
// simulators and runs it; see docs/benchmarks.md.
//
// Environment (set by hack/bench.sh):
//
//	DATABASE_URL   the throw-away PostgreSQL
//	BIN            the marketplace-etl binary
//	API_URL        simulator with ROWS lines per day (…/data)
//	API_URL_BIG    simulator with ROWS_BIG lines per day
//	API_URL_DAILY  simulator with DAILY_ROWS lines per day
//	SIM_PIDS       pids of the simulators (their CPU time is reported)
//	DAYS, ROWS, ROWS_BIG, DAILY_ROWS, REPEAT, OUT, WORK (a scratch directory)
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/marketplace-etl/marketplace-etl/internal/marts"
)

// firstDay is the first business date of the backfill range. The daily
// pass loads the day after the range and the big day is the one after that,
// so that the history stays contiguous, as in production (the marts span
// the history's dates).
var firstDay = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const naiveBatch = 100

type env struct {
	dbURL, bin, work, out              string
	api, apiBig, apiDaily              string
	days, rows, rowsBig, dailyRows, rp int
	simPIDs                            []int
}

// measurement is one timed execution.
type measurement struct {
	Seconds      float64 `json:"seconds"`
	WallSeconds  float64 `json:"wall_seconds,omitempty"`  // of the process, marts refresh included
	MartsSeconds float64 `json:"marts_seconds,omitempty"` // refresh inside the product's pass, excluded from seconds
	MaxRSSKiB    int64   `json:"max_rss_kib,omitempty"`
	CPUSeconds   float64 `json:"cpu_seconds,omitempty"`     // user+system of the measured process
	SimCPUSecs   float64 `json:"sim_cpu_seconds,omitempty"` // user+system of the simulators meanwhile
	PGCPUSecs    float64 `json:"pg_cpu_seconds,omitempty"`  // user+system of all PostgreSQL processes meanwhile
	OtherCPUSecs float64 `json:"other_cpu_seconds"`         // CPU the rest of the machine took meanwhile (other load)
}

// row is one line of the results table.
type row struct {
	Contender  string        `json:"contender"`
	Rows       int64         `json:"rows"`
	Seconds    float64       `json:"seconds"`      // median
	Best       float64       `json:"best_seconds"` // the fastest run: least disturbed by other load
	RowsPerSec float64       `json:"rows_per_second,omitempty"`
	VsLimit    float64       `json:"ratio_to_limit,omitempty"`
	VsNaive    float64       `json:"ratio_to_naive,omitempty"`
	PeakRSSMiB float64       `json:"peak_rss_mib,omitempty"` // max over the runs
	CPUSeconds float64       `json:"cpu_seconds,omitempty"`  // median
	SimCPUSecs float64       `json:"sim_cpu_seconds,omitempty"`
	PGCPUSecs  float64       `json:"pg_cpu_seconds,omitempty"`
	OtherCPU   float64       `json:"other_cpu_seconds"`
	Note       string        `json:"note,omitempty"`
	Runs       []measurement `json:"runs"`
}

type report struct {
	Date       string            `json:"date"`
	Product    string            `json:"product_version"`
	Machine    map[string]string `json:"machine"`
	Parameters map[string]int    `json:"parameters"`
	Results    []row             `json:"results"`
	Targets    []target          `json:"targets"`
}

// target is one goal of issue 8, checked on the medians.
type target struct {
	Goal  string `json:"goal"`
	Value string `json:"value"`
	Met   bool   `json:"met"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func getInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: %s=%q: expected a positive whole number\n", name, v)
			os.Exit(2)
		}
		return n
	}
	return def
}

func run() error {
	e := env{
		dbURL: os.Getenv("DATABASE_URL"), bin: os.Getenv("BIN"), work: os.Getenv("WORK"), out: os.Getenv("OUT"),
		api: os.Getenv("API_URL"), apiBig: os.Getenv("API_URL_BIG"), apiDaily: os.Getenv("API_URL_DAILY"),
		days: getInt("DAYS", 30), rows: getInt("ROWS", 50000), rowsBig: getInt("ROWS_BIG", 1000000),
		dailyRows: getInt("DAILY_ROWS", 5500), rp: getInt("REPEAT", 3),
	}
	for _, f := range strings.Fields(os.Getenv("SIM_PIDS")) {
		if pid, err := strconv.Atoi(f); err == nil {
			e.simPIDs = append(e.simPIDs, pid)
		}
	}
	if e.dbURL == "" || e.bin == "" || e.api == "" || e.apiBig == "" || e.apiDaily == "" || e.work == "" {
		return errors.New("DATABASE_URL, BIN, WORK, API_URL, API_URL_BIG and API_URL_DAILY must be set (run hack/bench.sh)")
	}
	if e.out == "" {
		e.out = "bench-results.json"
	}
	ctx := context.Background()
	db, err := sqlx.Open("postgres", e.dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(2)

	logf("migrating the schema")
	if out, err := exec.Command(e.bin, "migrate", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("migrate up: %v\n%s", err, out)
	}
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS bench`); err != nil {
		return err
	}

	from := firstDay
	to := firstDay.AddDate(0, 0, e.days-1)
	dailyDay, bigDay := date(to.AddDate(0, 0, 1)), date(to.AddDate(0, 0, 2))
	fetched := int64(e.days) * int64(e.rows)
	csvPath := filepath.Join(e.work, "purchases.csv")
	var product, productMarts, limit, naive []measurement
	var loaded int64

	// The three contenders are interleaved so that drifting load on the
	// machine hits them alike.
	for i := 1; i <= e.rp; i++ {
		logf("run %d/%d: product backfill of %d days x %d lines, load only (marts held)", i, e.rp, e.days, e.rows)
		if err := resetProduct(ctx, db); err != nil {
			return err
		}
		m, err := e.loadOnly(ctx, db, e.api, "backfill", "--from", date(from), "--to", date(to))
		if err != nil {
			return err
		}
		got, err := checkLoaded(ctx, db, fetched)
		if err != nil {
			return err
		}
		loaded = got
		logf("  %.2f s, %.0f lines/s, peak RSS %.1f MiB; CPU s: product %.2f, PostgreSQL %.2f, simulator %.2f, other load %.2f",
			m.Seconds, float64(fetched)/m.Seconds, mib(m.MaxRSSKiB), m.CPUSeconds, m.PGCPUSecs, m.SimCPUSecs, m.OtherCPUSecs)
		product = append(product, m)

		if i == 1 {
			// The limit and the naive loader get exactly the rows the
			// product accepted, exported once outside any timing. The
			// limit runs right after the load it is compared with, so that
			// the machine's drift hits the pair alike.
			if err := psql(e.dbURL, fmt.Sprintf(`\copy (SELECT * FROM marketplace.purchases ORDER BY purchase_date, line_no) TO '%s' CSV`, csvPath)); err != nil {
				return fmt.Errorf("exporting the rows: %w", err)
			}
		}

		logf("run %d/%d: psql \\copy of %d rows", i, e.rp, loaded)
		if err := freshTable(ctx, db, "bench.purchases_copy"); err != nil {
			return err
		}
		m, err = timed(exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", e.dbURL,
			"-c", fmt.Sprintf(`\copy bench.purchases_copy FROM '%s' CSV`, csvPath)), e.simPIDs, nil)
		if err != nil {
			return fmt.Errorf("psql \\copy: %w", err)
		}
		if err := checkCount(ctx, db, "bench.purchases_copy", loaded); err != nil {
			return err
		}
		logf("  %.2f s, %.0f rows/s; CPU s: psql %.2f, PostgreSQL %.2f, other load %.2f", m.Seconds, float64(loaded)/m.Seconds, m.CPUSeconds, m.PGCPUSecs, m.OtherCPUSecs)
		limit = append(limit, m)

		logf("run %d/%d: product backfill of %d days x %d lines with its marts", i, e.rp, e.days, e.rows)
		if err := resetProduct(ctx, db); err != nil {
			return err
		}
		m, err = e.product(ctx, db, e.api, "backfill", "--from", date(from), "--to", date(to))
		if err != nil {
			return err
		}
		if _, err := checkLoaded(ctx, db, fetched); err != nil {
			return err
		}
		logf("  %.2f s with the marts (final update %.2f s); CPU s: product %.2f, PostgreSQL %.2f, other load %.2f",
			m.WallSeconds, m.MartsSeconds, m.CPUSeconds, m.PGCPUSecs, m.OtherCPUSecs)
		productMarts = append(productMarts, m)
		logf("run %d/%d: multi-row INSERT (%d rows a statement, autocommit) of %d rows", i, e.rp, naiveBatch, loaded)
		if err := freshTable(ctx, db, "bench.purchases_insert"); err != nil {
			return err
		}
		m, err = naiveLoad(ctx, db, csvPath, "bench.purchases_insert")
		if err != nil {
			return fmt.Errorf("naive loader: %w", err)
		}
		if err := checkCount(ctx, db, "bench.purchases_insert", loaded); err != nil {
			return err
		}
		logf("  %.2f s, %.0f rows/s", m.Seconds, float64(loaded)/m.Seconds)
		naive = append(naive, m)
	}

	// The database now holds the product's last backfill: the daily pass and
	// the marts run on top of that history.
	var daily []measurement
	for i := 1; i <= e.rp; i++ {
		logf("run %d/%d: daily pass (run --date %s) of %d lines on top of the history", i, e.rp, dailyDay, e.dailyRows)
		if err := deleteDay(ctx, db, dailyDay); err != nil {
			return err
		}
		m, err := e.product(ctx, db, e.apiDaily, "run", "--date", dailyDay)
		if err != nil {
			return err
		}
		logf("  %.3f s (marts inside the pass: %.3f s)", m.Seconds, m.MartsSeconds)
		daily = append(daily, m)
	}
	if err := deleteDay(ctx, db, dailyDay); err != nil {
		return err
	}

	var martsFull, martsIdle []measurement
	// Autovacuum is off for steady timings: give the planner the statistics
	// a live server would have.
	if _, err := db.ExecContext(ctx, `ANALYZE`); err != nil {
		return err
	}
	for i := 1; i <= e.rp; i++ {
		logf("run %d/%d: marts rebuild on %d loaded rows, then an update with nothing queued", i, e.rp, loaded)
		if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil {
			return err
		}
		// By the product's binary, not in this process: a child's peak RSS
		// as the kernel reports it is at least its parent's at the exec, so
		// this process must stay small for the big day's figure.
		m1, err := e.product(ctx, db, e.api, "marts", "rebuild")
		if err != nil {
			return err
		}
		m2, err := e.product(ctx, db, e.api, "marts", "update")
		if err != nil {
			return err
		}
		logf("  rebuild %.2f s, idle update %.3f s (wall, process included)", m1.WallSeconds, m2.WallSeconds)
		martsFull, martsIdle = append(martsFull, m1), append(martsIdle, m2)
	}

	var big []measurement
	for i := 1; i <= e.rp; i++ {
		logf("run %d/%d: one day of %d lines (%s)", i, e.rp, e.rowsBig, bigDay)
		if err := resetProduct(ctx, db); err != nil {
			return err
		}
		m, err := e.product(ctx, db, e.apiBig, "backfill", "--from", bigDay, "--to", bigDay)
		if err != nil {
			return err
		}
		if _, err := checkLoaded(ctx, db, int64(e.rowsBig)); err != nil {
			return err
		}
		logf("  %.2f s, peak RSS %.1f MiB", m.Seconds, mib(m.MaxRSSKiB))
		big = append(big, m)
	}

	limitRate := float64(loaded) / median(limit, secs)
	naiveRate := float64(loaded) / median(naive, secs)
	mk := func(name string, rows int64, ms []measurement, note string) row {
		r := row{Contender: name, Rows: rows, Runs: ms, Note: note}
		if len(ms) == 0 {
			return r
		}
		r.Seconds = median(ms, secs)
		r.Best = ms[0].Seconds
		for _, m := range ms {
			r.Best = min(r.Best, m.Seconds)
		}
		r.CPUSeconds = median(ms, func(m measurement) float64 { return m.CPUSeconds })
		r.SimCPUSecs = median(ms, func(m measurement) float64 { return m.SimCPUSecs })
		r.PGCPUSecs = median(ms, func(m measurement) float64 { return m.PGCPUSecs })
		r.OtherCPU = median(ms, func(m measurement) float64 { return m.OtherCPUSecs })
		for _, m := range ms {
			r.PeakRSSMiB = max(r.PeakRSSMiB, mib(m.MaxRSSKiB))
		}
		if rows > 0 {
			r.RowsPerSec = float64(rows) / r.Seconds
			r.VsLimit = r.RowsPerSec / limitRate
			r.VsNaive = r.RowsPerSec / naiveRate
		}
		return r
	}
	rep := report{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Product: productVersion(e.bin),
		Machine: machine(ctx, db),
		Parameters: map[string]int{"days": e.days, "rows_per_day": e.rows, "rows_big": e.rowsBig,
			"daily_rows": e.dailyRows, "repeat": e.rp},
		Results: []row{
			mk("product: backfill", fetched, product, fmt.Sprintf("%d days x %d lines fetched; %d accepted; load only: the marts lock held by the benchmark", e.days, e.rows, loaded)),
			mk("limit: psql \\copy", loaded, limit, "the accepted rows from a CSV file, one COPY"),
			mk("naive: INSERT x100 autocommit", loaded, naive, "lib/pq, literal VALUES, one commit per statement"),
			mk("product: one big day", int64(e.rowsBig), big, "peak RSS must stay flat"),
			mk("product: daily run --date", int64(e.dailyRows), daily, "on top of the history; simulator without latency"),
			mk("product: backfill with marts", fetched, wall(productMarts), "the same backfill, its marts drained behind the loads and at the end"),
			mk("marts rebuild", 0, wall(martsFull), fmt.Sprintf("every day of %d rows, one transaction per half; marketplace-etl marts rebuild", loaded)),
			mk("marts update, nothing queued", 0, wall(martsIdle), "what a pass that loaded nothing pays; marketplace-etl marts update"),
		},
	}
	p, b, d := rep.Results[0], rep.Results[3], rep.Results[4]
	pWall := median(productMarts, func(m measurement) float64 { return m.WallSeconds })
	dWall := median(daily, func(m measurement) float64 { return m.WallSeconds })
	dMarts := median(daily, func(m measurement) float64 { return m.MartsSeconds })
	rep.Targets = []target{
		{"backfill well ahead of the INSERT loader", fmt.Sprintf("%.1fx", p.VsNaive), p.VsNaive >= 2},
		{"peak RSS <= 64 MiB on the big day", fmt.Sprintf("%.1f MiB (%d lines)", b.PeakRSSMiB, b.Rows), b.PeakRSSMiB > 0 && b.PeakRSSMiB <= 64},
		{"daily pass of a normal day < 1 s of own time", fmt.Sprintf("%.3f s (%d lines, marts apart)", d.Seconds, d.Rows), d.Seconds > 0 && d.Seconds < 1},
		{fmt.Sprintf("daily pass including marts <= 1 s on %d lines (<= 2 s on 10 M)", loaded), fmt.Sprintf("%.3f s (marts %.3f s)", dWall, dMarts), dWall > 0 && dWall <= 1},
		{"backfill including marts <= 1.5 x load-only", fmt.Sprintf("%.2fx (%.1f s with marts, %.1f s load only; pairs %s)", pWall/p.Seconds, pWall, p.Seconds,
			pairs(product, func(i int) float64 { return productMarts[i].WallSeconds / product[i].Seconds }, "%.2fx")), p.Seconds > 0 && pWall <= 1.5*p.Seconds},
		{"backfill load throughput >= 0.8 x psql \\copy", fmt.Sprintf("%.0f %% (pairs %s)", 100*p.VsLimit,
			pairs(product, func(i int) float64 {
				return 100 * float64(fetched) / product[i].Seconds / (float64(loaded) / limit[i].Seconds)
			}, "%.0f %%")), p.VsLimit >= 0.8},
	}
	printTable(os.Stdout, rep)
	buf, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(e.out, append(buf, '\n'), 0o644); err != nil {
		return err
	}
	logf("results written to %s", e.out)
	return nil
}

var logSeq int

// pairs formats f of each run: a ratio between two contenders of the same
// run, which ran one after the other, is less exposed to the machine's
// drift than the ratio of their medians.
func pairs(runs []measurement, f func(i int) float64, format string) string {
	out := make([]string, len(runs))
	for i := range runs {
		out[i] = fmt.Sprintf(format, f(i))
	}
	return strings.Join(out, ", ")
}

func wall(ms []measurement) []measurement {
	out := make([]measurement, len(ms))
	for i, m := range ms {
		m.Seconds = m.WallSeconds
		out[i] = m
	}
	return out
}

// loadOnly runs a pass while the benchmark holds the marts lock: the
// pass's background drains find the marts busy and its final update gives
// up after a millisecond (the pass exits 1, the changed days stay queued),
// so its time is the load alone, on the same binary and settings.
func (e env) loadOnly(ctx context.Context, db *sqlx.DB, api string, args ...string) (measurement, error) {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return measurement{}, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT FROM marketplace.marts_lock FOR UPDATE`); err != nil {
		return measurement{}, fmt.Errorf("holding the marts lock: %w", err)
	}
	return e.run(ctx, db, api, true, args...)
}

// product runs the binary once and measures it. Any marts refresh inside
// the pass is reported apart and excluded from the time; the CPU figures are
// then taken when the last day is done, before the refresh starts.
func (e env) product(ctx context.Context, db *sqlx.DB, api string, args ...string) (measurement, error) {
	return e.run(ctx, db, api, false, args...)
}

// run runs the binary once; marts held: its marts update must fail on
// the lock (exit 1), and the time is all load.
func (e env) run(ctx context.Context, db *sqlx.DB, api string, martsHeld bool, args ...string) (measurement, error) {
	if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		return measurement{}, err
	}
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append(os.Environ(), "MARKETPLACE_API_URL="+api, "LOG_FORMAT=json", "LOG_LEVEL=info",
		"ETL_AUTO_MIGRATE=false", "ETL_CATCHUP_DAYS=0")
	if martsHeld {
		cmd.Env = append(cmd.Env, "ETL_MARTS_LOCK_TIMEOUT=1ms")
	}
	logSeq++
	logPath := filepath.Join(e.work, fmt.Sprintf("product-%02d-%s.log", logSeq, args[0]))
	lf, err := os.Create(logPath)
	if err != nil {
		return measurement{}, err
	}
	defer lf.Close()
	var last *snapshot
	lw := &lineWriter{w: lf, line: func(l []byte) {
		var rec struct {
			Msg      string `json:"msg"`
			Progress string `json:"progress"`
		}
		if json.Unmarshal(l, &rec) != nil || rec.Msg != "day done" {
			return
		}
		if i, n, ok := strings.Cut(rec.Progress, "/"); ok && i == n && cmd.Process != nil {
			s := take(e.simPIDs)
			if f := procStat(cmd.Process.Pid); len(f) >= 13 {
				s.proc = ticks(f[11]) + ticks(f[12])
			}
			last = &s
		}
	}}
	cmd.Stderr, cmd.Stdout = lw, lw
	var base snapshot
	m, err := timed(cmd, e.simPIDs, &base)
	var ee *exec.ExitError
	if martsHeld && errors.As(err, &ee) && ee.ExitCode() == 1 {
		m.WallSeconds = m.Seconds
		return m, nil
	}
	if err == nil && martsHeld {
		err = errors.New("exited 0 although the marts lock was held")
	}
	if err != nil {
		tail, _ := os.ReadFile(logPath)
		return m, fmt.Errorf("marketplace-etl %s: %w\n%s", strings.Join(args, " "), err, lastLines(string(tail), 20))
	}
	m.WallSeconds = m.Seconds
	if args[0] == "marts" {
		// Not a pass: the whole process is the marts command.
		return m, nil
	}
	m.MartsSeconds, err = martsInLog(logPath)
	if err != nil {
		return m, err
	}
	m.Seconds -= m.MartsSeconds
	if m.MartsSeconds > 0 && last != nil {
		m.CPUSeconds, m.PGCPUSecs, m.SimCPUSecs = last.proc, last.pg-base.pg, last.sim-base.sim
		m.OtherCPUSecs = max(0, last.busy-base.busy-m.CPUSeconds-m.PGCPUSecs-m.SimCPUSecs)
	}
	return m, nil
}

// snapshot is the CPU time spent so far by PostgreSQL, the simulators and
// the measured process.
type snapshot struct{ pg, sim, proc, busy float64 }

func take(simPIDs []int) snapshot {
	return snapshot{pg: pgCPU(), sim: cpuOf(simPIDs), busy: machineBusy()}
}

// machineBusy is the CPU time the whole machine has spent busy (not idle,
// not waiting for I/O), from /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	total := 0.0
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		total += ticks(v)
	}
	return total
}

// lineWriter copies a stream to w and hands every complete line to line.
type lineWriter struct {
	w    io.Writer
	buf  []byte
	line func([]byte)
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.buf = append(lw.buf, p...)
	for {
		i := slices.Index(lw.buf, '\n')
		if i < 0 {
			break
		}
		lw.line(lw.buf[:i])
		lw.buf = lw.buf[i+1:]
	}
	return lw.w.Write(p)
}

// timed runs cmd and returns its wall time, peak RSS and CPU time, and the
// CPU time PostgreSQL and the simulators spent meanwhile; base receives the
// starting point.
func timed(cmd *exec.Cmd, simPIDs []int, base *snapshot) (measurement, error) {
	b := take(simPIDs)
	if base != nil {
		*base = b
	}
	t0 := time.Now()
	err := cmd.Run()
	m := measurement{Seconds: time.Since(t0).Seconds(), SimCPUSecs: cpuOf(simPIDs) - b.sim, PGCPUSecs: pgCPU() - b.pg}
	busy := machineBusy() - b.busy
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			m.MaxRSSKiB = ru.Maxrss
			m.CPUSeconds = tv(ru.Utime) + tv(ru.Stime)
		}
	}
	m.OtherCPUSecs = max(0, busy-m.CPUSeconds-m.PGCPUSecs-m.SimCPUSecs)
	return m, err
}

// selfCPU is this process's CPU time: the naive loader's client side.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// cpuOf sums user+system CPU seconds of the processes from /proc.
func cpuOf(pids []int) float64 {
	total := 0.0
	for _, pid := range pids {
		if f := procStat(pid); len(f) >= 13 {
			total += ticks(f[11]) + ticks(f[12])
		}
	}
	return total
}

// pgCPU is the CPU time PostgreSQL has spent: the postmaster's own and its
// exited children's (which it has waited for), plus its live children's.
func pgCPU() float64 {
	pm, err := strconv.Atoi(os.Getenv("PG_PID"))
	if err != nil {
		return 0
	}
	total := 0.0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := procStat(pid)
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		switch {
		case pid == pm:
			total += ticks(f[11]) + ticks(f[12]) + ticks(f[13]) + ticks(f[14])
		case ppid == pm:
			total += ticks(f[11]) + ticks(f[12])
		}
	}
	return total
}

// procStat returns the fields of /proc/PID/stat after the command name:
// state, ppid, … (utime is [11], stime [12], cutime [13], cstime [14]).
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil
	}
	return strings.Fields(s[i+2:])
}

func ticks(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v / 100 // USER_HZ
}

// martsInLog finds the duration of the marts update inside a pass in its
// JSON log (0 if the pass had nothing to update) and checks that the pass
// succeeded.
func martsInLog(path string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	marts, ok := 0.0, false
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		msg, _ := l["msg"].(string)
		switch {
		case msg == "pass succeeded":
			ok = true
		case msg == "marts updated" && l["behind_loads"] != true:
			marts = max(marts, duration(l["duration"]))
		}
	}
	if !ok {
		return 0, fmt.Errorf("no \"pass succeeded\" line in %s", path)
	}
	return marts, sc.Err()
}

func duration(v any) float64 {
	switch d := v.(type) {
	case float64: // the product's JSON logs write durations in seconds
		return d
	case string:
		if x, err := time.ParseDuration(d); err == nil {
			return x.Seconds()
		}
	}
	return 0
}

// resetProduct empties every table the product writes, so that each run
// starts from the same state.
func resetProduct(ctx context.Context, db *sqlx.DB) error {
	_, err := db.ExecContext(ctx, `TRUNCATE marketplace.purchases, marketplace.day_summaries, marketplace.rejected_purchases, marketplace.day_loads,
		marketplace.etl_runs, marketplace.marts_queue, marketplace.day_locks, `+strings.Join(marts.Tables, ", "))
	return err
}

func deleteDay(ctx context.Context, db *sqlx.DB, day string) error {
	for _, t := range []string{"marketplace.purchases", "marketplace.day_summaries", "marketplace.rejected_purchases", "marketplace.day_loads"} {
		if _, err := db.ExecContext(ctx, "DELETE FROM "+t+" WHERE purchase_date = $1", day); err != nil {
			return err
		}
	}
	return nil
}

// freshTable (re)creates a table of the shape of marketplace.purchases: the
// same columns, checks and primary key.
func freshTable(ctx context.Context, db *sqlx.DB, name string) error {
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + name,
		"CREATE TABLE " + name + " (LIKE marketplace.purchases INCLUDING ALL)",
		"CHECKPOINT",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// checkLoaded verifies that the product accounted for every fetched line and
// returns how many it accepted.
func checkLoaded(ctx context.Context, db *sqlx.DB, fetched int64) (int64, error) {
	var acc, rej int64
	if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM marketplace.purchases), (SELECT count(*) FROM marketplace.rejected_purchases)`).Scan(&acc, &rej); err != nil {
		return 0, err
	}
	if acc+rej != fetched {
		return 0, fmt.Errorf("the product stored %d accepted + %d rejected lines, expected %d fetched", acc, rej, fetched)
	}
	return acc, nil
}

func checkCount(ctx context.Context, db *sqlx.DB, table string, want int64) error {
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("%s holds %d rows, expected %d", table, n, want)
	}
	return nil
}

// naiveLoad does what psycopg2's execute_values did for the original:
// INSERT statements of 100 rows with the values inlined as literals, each
// in its own transaction (autocommit), over one connection. Reading the CSV
// file is part of the time but negligible next to the statements.
func naiveLoad(ctx context.Context, db *sqlx.DB, csvPath, table string) (measurement, error) {
	f, err := os.Open(csvPath)
	if err != nil {
		return measurement{}, err
	}
	defer f.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return measurement{}, err
	}
	defer conn.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.ReuseRecord = true
	// Columns: purchase_date, line_no, client_id, gender, product_id,
	// quantity, price_per_item, discount_per_item, total_price,
	// seconds_from_midnight, purchased_at, run_id; quoted are the text ones.
	quoted := map[int]bool{0: true, 3: true, 10: true}
	head := "INSERT INTO " + table + " (purchase_date, line_no, client_id, gender, product_id, quantity, price_per_item, discount_per_item, total_price, seconds_from_midnight, purchased_at, run_id) VALUES "
	var sb strings.Builder
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		_, err := conn.ExecContext(ctx, sb.String())
		sb.Reset()
		n = 0
		return err
	}
	b, self0 := take(nil), selfCPU()
	t0 := time.Now()
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return measurement{}, err
		}
		if n == 0 {
			sb.WriteString(head)
		} else {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for i, v := range rec {
			if i > 0 {
				sb.WriteByte(',')
			}
			if quoted[i] {
				sb.WriteByte('\'')
				sb.WriteString(strings.ReplaceAll(v, "'", "''"))
				sb.WriteByte('\'')
			} else {
				sb.WriteString(v)
			}
		}
		sb.WriteByte(')')
		if n++; n == naiveBatch {
			if err := flush(); err != nil {
				return measurement{}, err
			}
		}
	}
	if err := flush(); err != nil {
		return measurement{}, err
	}
	m := measurement{Seconds: time.Since(t0).Seconds(), PGCPUSecs: pgCPU() - b.pg}
	self := selfCPU() - self0
	m.CPUSeconds = self
	m.OtherCPUSecs = max(0, machineBusy()-b.busy-m.PGCPUSecs-self)
	return m, nil
}

func psql(url, command string) error {
	cmd := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", command)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func productVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func machine(ctx context.Context, db *sqlx.DB) map[string]string {
	m := map[string]string{"nproc": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m["memory"] = strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " ")
	}
	var v string
	if db.QueryRowContext(ctx, `SHOW server_version`).Scan(&v) == nil {
		m["postgresql"] = v
	}
	for _, s := range []string{"shared_buffers", "max_wal_size", "synchronous_commit", "fsync", "wal_level"} {
		if db.QueryRowContext(ctx, "SHOW "+s).Scan(&v) == nil {
			m["pg_"+s] = v
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m["loadavg_at_end"] = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}

func printTable(w io.Writer, rep report) {
	fmt.Fprintf(w, "\nmarketplace-etl benchmark, %s; %s, %s CPUs, PostgreSQL %s\n", rep.Date, rep.Machine["cpu"], rep.Machine["nproc"], rep.Machine["postgresql"])
	fmt.Fprintf(w, "product %s; median of %d runs each\n\n", rep.Product, rep.Parameters["repeat"])
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "contender\trows\tseconds\tbest s\trows/s\tvs limit\tvs naive\tpeak RSS MiB\tCPU s\tPG CPU s\tsim CPU s\tother CPU s\t")
	for _, r := range rep.Results {
		if len(r.Runs) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t\n", r.Contender, "", r.Note)
			continue
		}
		cell := func(v float64, f string) string {
			if v == 0 {
				return "-"
			}
			return fmt.Sprintf(f, v)
		}
		rows := "-"
		if r.Rows > 0 {
			rows = strconv.FormatInt(r.Rows, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t\n", r.Contender, rows, r.Seconds, r.Best,
			cell(r.RowsPerSec, "%.0f"), cell(r.VsLimit, "%.2f"), cell(r.VsNaive, "%.2f"),
			cell(r.PeakRSSMiB, "%.1f"), cell(r.CPUSeconds, "%.2f"), cell(r.PGCPUSecs, "%.2f"), cell(r.SimCPUSecs, "%.2f"), r.OtherCPU)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, t := range rep.Targets {
		mark := "    MET"
		if !t.Met {
			mark = "NOT MET"
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", mark, t.Goal, t.Value)
	}
	fmt.Fprintln(w)
}

func secs(m measurement) float64 { return m.Seconds }

func median(ms []measurement, f func(measurement) float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	v := make([]float64, len(ms))
	for i, m := range ms {
		v[i] = f(m)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func date(t time.Time) string { return t.Format(time.DateOnly) }

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
