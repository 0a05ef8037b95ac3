package marts

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/marketplace-etl/marketplace-etl/internal/purchases"
)

// A first update of the client half (every client new, after a backfill
// or a migration) is built here rather than in SQL: it reads each changed
// day's clients and their revenue of the day (one array per day, from the
// day's summary, or from its lines when it has none), merges them by
// client in memory, and writes client_stats by COPY in key order, with
// client_events, cohort_activity and the RFM histograms computed on the
// way. In SQL the same work is a sort of every purchase line by client and
// day and three more passes over the result: most of the cost of a
// backfill's marts (docs/benchmarks.md). Rebuilds stay in SQL over the
// lines, the reference the tests compare this with.

// maxBuildPairs bounds the client days held in memory (32 bytes each with
// the sort's copy: 128 MiB, within the ETL container's 512Mi limit): a
// history with more (about 4.5 M lines at the real API's shape) is built in
// SQL, within the server's work_mem.
var maxBuildPairs = 4 << 20

// clientDay is one client's revenue of one day (days since 2000-01-01).
type clientDay struct {
	client int32
	day    int32
	rev    int64 // hundredths
}

// epoch is day 0 of the day numbers, as in rfm_histogram's r buckets and
// client_stats.days.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// buildClients writes a first update's client marts for the changed days of
// b. false: the figures do not fit the exact integer arithmetic used here
// (or the history does not fit maxBuildPairs) and nothing was written.
func buildClients(ctx context.Context, b *batch) (bool, error) {
	t0 := time.Now()
	// The loads' garbage goes back to the system first: the client days
	// come on top of what the process holds, not of what it once held. And
	// while they are held (pointer-free slices, cheap to mark) the garbage
	// collector runs at a quarter of growth instead of a doubling, so that
	// the process's peak is about the client days, not twice them.
	debug.FreeOSMemory()
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	pairs, ok, err := readClientDays(ctx, b)
	if err != nil || !ok {
		return false, err
	}
	b.log.Debug("marts step", "step", "reading the client days", "pairs", len(pairs), "duration", time.Since(t0).Round(time.Microsecond))
	t0 = time.Now()
	pairs = sortByClient(pairs)
	s, ok := summarizeClients(pairs)
	if !ok {
		return false, nil
	}
	b.log.Debug("marts step", "step", "merging the client days", "clients", s.clients, "duration", time.Since(t0).Round(time.Microsecond))
	t0 = time.Now()
	for _, q := range emptyClients {
		if _, err := b.tx.ExecContext(ctx, q); err != nil {
			return false, fmt.Errorf("emptying the client marts: %w", err)
		}
	}
	exclusive, err := takeClientStats(ctx, b.tx)
	if err != nil {
		return false, err
	}
	if err := copyClientStats(ctx, b.conn, pairs, s, exclusive); err != nil {
		return false, fmt.Errorf("writing the client rows: %w", err)
	}
	b.log.Debug("marts step", "step", "copying the client rows", "duration", time.Since(t0).Round(time.Microsecond))
	if exclusive {
		if _, err := b.tx.ExecContext(ctx, `ALTER TABLE marts.client_stats ADD CONSTRAINT client_stats_pkey PRIMARY KEY (client_id)`); err != nil {
			return false, fmt.Errorf("indexing the client rows: %w", err)
		}
	}
	b.log.Debug("marts step", "step", "writing the client rows", "duration", time.Since(t0).Round(time.Microsecond))
	t0 = time.Now()
	if err := s.write(ctx, b.tx); err != nil {
		return false, err
	}
	b.log.Debug("marts step", "step", "writing the client activity", "duration", time.Since(t0).Round(time.Microsecond))
	return true, nil
}

// takeClientStats truncates the (empty) client_stats and drops its primary
// key, when no reader is using it: COPY can then write the rows frozen, and
// the key is built once after them instead of row by row, half the time of
// the write. That needs an ACCESS EXCLUSIVE lock: readers wait for the
// commit (seconds, once in the marts' life). A reader already there is not
// waited for (false): the rows then go into the table as it is.
func takeClientStats(ctx context.Context, tx *sql.Tx) (bool, error) {
	var timeout string
	if err := tx.QueryRowContext(ctx, `SELECT current_setting('lock_timeout')`).Scan(&timeout); err != nil {
		return false, fmt.Errorf("reading the lock timeout: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT marts_client_stats; SET LOCAL lock_timeout = 100`); err != nil {
		return false, fmt.Errorf("taking client_stats: %w", err)
	}
	_, err := tx.ExecContext(ctx, `TRUNCATE marts.client_stats; ALTER TABLE marts.client_stats DROP CONSTRAINT client_stats_pkey`)
	var pe *pq.Error
	switch {
	case errors.As(err, &pe) && pe.Code == "55P03": // lock_not_available: a reader
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT marts_client_stats`); err != nil {
			return false, fmt.Errorf("taking client_stats: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("taking client_stats: %w", err)
	default:
		if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT marts_client_stats`); err != nil {
			return false, fmt.Errorf("taking client_stats: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `SELECT set_config('lock_timeout', $1, true)`, timeout); err != nil {
		return false, fmt.Errorf("restoring the lock timeout: %w", err)
	}
	return err == nil, nil
}

// readClientDays reads the client days of the batch's days.
func readClientDays(ctx context.Context, b *batch) ([]clientDay, bool, error) {
	// The days with a summary in $2, the others in $1.
	onDays := strings.ReplaceAll(onLineDays, "$2", "$1")
	if consecutive(b.fromLines) {
		onDays = onDayRange(1)
	}
	// Room for them all at once, not grown by doubling: the clients of the
	// summaries, and at most a client per line of the other days.
	var room int64
	if err := b.tx.QueryRowContext(ctx, `SELECT
			coalesce((SELECT sum(clients) FROM marketplace.day_summaries WHERE purchase_date = ANY($2::date[])), 0)
			+ coalesce((SELECT sum(rows_loaded) FROM marketplace.day_loads WHERE purchase_date = ANY($1::date[])), 0)`,
		pq.Array(b.fromLines), pq.Array(b.fromSummaries)).Scan(&room); err != nil {
		return nil, false, fmt.Errorf("counting the client days: %w", err)
	}
	rows, err := b.tx.QueryContext(ctx, `SELECT purchase_date - date '2000-01-01', client_ids, client_revenue
		FROM marketplace.day_summaries WHERE purchase_date = ANY($2::date[])
		UNION ALL
		-- A row per client day, as a one-element array: a day of a million
		-- lines would otherwise be one row of tens of megabytes.
		SELECT purchase_date - date '2000-01-01', '{' || client_id || '}', '{' || sum(total_price) || '}'
		FROM marketplace.purchases WHERE `+onDays+`
		GROUP BY purchase_date, client_id
		-- By day: sortByClient keeps this order within a client.
		ORDER BY 1`, pq.Array(b.fromLines), pq.Array(b.fromSummaries))
	if err != nil {
		return nil, false, fmt.Errorf("reading the client days: %w", err)
	}
	defer rows.Close()
	pairs := make([]clientDay, 0, min(room, int64(maxBuildPairs))+1)
	for rows.Next() {
		var day int32
		var ids, revs sql.RawBytes
		if err := rows.Scan(&day, &ids, &revs); err != nil {
			return nil, false, fmt.Errorf("reading the client days: %w", err)
		}
		var ok bool
		if pairs, ok = appendClientDays(pairs, day, ids, revs); !ok || len(pairs) > maxBuildPairs {
			b.log.Info("the first update of the client marts runs in SQL: the history is too large or its amounts too big for exact integers",
				"client_days_read", len(pairs), "limit", maxBuildPairs)
			return nil, false, nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("reading the client days: %w", err)
	}
	return pairs, true, nil
}

// appendClientDays parses a day's arrays, {id,...} and {revenue,...}.
func appendClientDays(pairs []clientDay, day int32, ids, revs []byte) ([]clientDay, bool) {
	ids, okI := arrayBody(ids)
	revs, okR := arrayBody(revs)
	if !okI || !okR {
		return pairs, false
	}
	for len(ids) > 0 {
		var id, rev int64
		var ok bool
		if id, ids, ok = parseInt(ids); !ok || id > math.MaxInt32 {
			return pairs, false
		}
		if rev, revs, ok = parseCents(revs); !ok {
			return pairs, false
		}
		pairs = append(pairs, clientDay{client: int32(id), day: day, rev: rev})
	}
	return pairs, len(revs) == 0
}

// parseInt parses a non-negative integer and the comma after it.
func parseInt(b []byte) (int64, []byte, bool) {
	var v int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if v > (math.MaxInt64-9)/10 {
			return 0, nil, false
		}
		v = v*10 + int64(b[i]-'0')
	}
	if i == 0 {
		return 0, nil, false
	}
	if i < len(b) {
		if b[i] != ',' {
			return 0, nil, false
		}
		i++
	}
	return v, b[i:], true
}

// parseCents parses a non-negative numeric with at most two decimals as
// hundredths, and the comma after it.
func parseCents(b []byte) (int64, []byte, bool) {
	whole, rest, ok := parseInt(b)
	if ok {
		// No fraction: parseInt took the comma.
		if whole > math.MaxInt64/100 {
			return 0, nil, false
		}
		return whole * 100, rest, true
	}
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
	}
	if i == 0 || i+3 > len(b) || b[i] != '.' || b[i+1] < '0' || b[i+1] > '9' || b[i+2] < '0' || b[i+2] > '9' {
		return 0, nil, false
	}
	frac := int64(b[i+1]-'0')*10 + int64(b[i+2]-'0')
	tail := b[i+3:]
	if len(tail) > 0 {
		if tail[0] != ',' {
			return 0, nil, false
		}
		tail = tail[1:]
	}
	whole, _, ok = parseInt(b[:i])
	if !ok || whole > (math.MaxInt64-99)/100 {
		return 0, nil, false
	}
	return whole*100 + frac, tail, true
}

// sortByClient sorts pairs by client, keeping the order of each client's
// days: two stable counting passes of 16 bits (client ids are not
// negative), a few times faster than a comparison sort of millions.
func sortByClient(pairs []clientDay) []clientDay {
	if slices.IsSortedFunc(pairs, func(x, y clientDay) int { return cmp.Compare(x.client, y.client) }) {
		// One day, or days of distinct clients: no copy needed.
		return pairs
	}
	tmp := make([]clientDay, len(pairs))
	for shift := 0; shift < 32; shift += 16 {
		var count [1<<16 + 1]int
		for _, p := range pairs {
			count[(uint32(p.client)>>shift)&0xffff+1]++
		}
		for i := 1; i < len(count); i++ {
			count[i] += count[i-1]
		}
		for _, p := range pairs {
			k := (uint32(p.client) >> shift) & 0xffff
			tmp[count[k]] = p
			count[k]++
		}
		pairs, tmp = tmp, pairs
	}
	return pairs
}

// clientSums is what a first update derives from the sorted client days.
type clientSums struct {
	clients  int
	monetary []int64 // per client, in order
	bucket   []int32 // m_bucket per client
	firstDay int32   // of the event arrays
	d7, d30  []int64 // client_events, indexed by day - firstDay
	newC     []int64
	cohorts  map[[2]int32]*cohortCell // (cohort month, month), months since 2000-01
	r, f, m  map[int32]int64          // RFM histograms
}

type cohortCell struct{ active, revenue int64 }

// summarizeClients computes clientSums; false when a sum overflows.
func summarizeClients(pairs []clientDay) (*clientSums, bool) {
	s := &clientSums{cohorts: map[[2]int32]*cohortCell{}, r: map[int32]int64{}, f: map[int32]int64{}, m: map[int32]int64{}}
	if len(pairs) == 0 {
		return s, true
	}
	lo, hi := pairs[0].day, pairs[0].day
	for _, p := range pairs {
		lo, hi = min(lo, p.day), max(hi, p.day)
	}
	s.firstDay = lo
	clients := 1
	for i := 1; i < len(pairs); i++ {
		if pairs[i].client != pairs[i-1].client {
			clients++
		}
	}
	s.monetary, s.bucket = make([]int64, 0, clients), make([]int32, 0, clients)
	n := int(hi-lo) + 31
	s.d7, s.d30, s.newC = make([]int64, n), make([]int64, n), make([]int64, n)
	months := make([]int32, hi-lo+1) // month of each day
	for d := range months {
		t := epoch.AddDate(0, 0, int(lo)+d)
		months[d] = int32(t.Year()-2000)*12 + int32(t.Month()) - 1
	}
	for i := 0; i < len(pairs); {
		j := i + 1
		for j < len(pairs) && pairs[j].client == pairs[i].client {
			j++
		}
		var monetary int64
		cohort := months[pairs[i].day-lo]
		var cell *cohortCell
		for k := i; k < j; k++ {
			d := pairs[k].day
			var carry uint64
			var sum uint64
			sum, carry = bits.Add64(uint64(monetary), uint64(pairs[k].rev), 0)
			if carry != 0 || sum > math.MaxInt64 {
				return nil, false
			}
			monetary = int64(sum)
			// client_events: see clientActivity.
			x := d - lo
			if k == i {
				s.d7[x]++
				s.d30[x]++
				s.newC[x]++
			} else {
				gap := min(d-pairs[k-1].day, 30)
				s.d7[x+max(0, 7-gap)]++
				s.d30[x+max(0, 30-gap)]++
			}
			s.d7[x+7]--
			s.d30[x+30]--
			// cohort_activity: active once a month, on its first day.
			month := months[x]
			if k == i || months[pairs[k-1].day-lo] != month {
				key := [2]int32{cohort, month}
				if cell = s.cohorts[key]; cell == nil {
					cell = &cohortCell{}
					s.cohorts[key] = cell
				}
				cell.active++
			}
			if cell.revenue > math.MaxInt64-pairs[k].rev {
				return nil, false
			}
			cell.revenue += pairs[k].rev
		}
		if monetary >= 1<<53 {
			// float64(monetary) would no longer be exact.
			return nil, false
		}
		// As floor(400 * ln(1 + monetary::float8)) in SQL: monetary/100 is
		// the correctly rounded double of the decimal, as the server's
		// conversion of its text.
		bucket := int32(math.Floor(400 * math.Log(1+float64(monetary)/100)))
		s.monetary = append(s.monetary, monetary)
		s.bucket = append(s.bucket, bucket)
		s.r[pairs[j-1].day]++
		s.f[int32(j-i)]++
		s.m[bucket]++
		s.clients++
		i = j
	}
	return s, true
}

// copyClientStats writes the client rows by COPY, in key order.
// frozen: the table was truncated in this transaction.
func copyClientStats(ctx context.Context, conn *sql.Conn, pairs []clientDay, s *clientSums, frozen bool) error {
	return conn.Raw(func(dc any) error {
		prep, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot prepare COPY", dc)
		}
		q := `COPY marts.client_stats (client_id, first_day, last_day,
			frequency, monetary, m_bucket, days, revenues) FROM STDIN`
		if frozen {
			q += ` WITH (FREEZE)`
		}
		st, err := prep.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("starting COPY: %w", err)
		}
		defer st.Close()
		cd, ok := st.(interface {
			CopyData(ctx context.Context, line string) (driver.Result, error)
		})
		if !ok {
			return fmt.Errorf("driver statement %T has no CopyData", st)
		}
		buf := make([]byte, 0, 96<<10)
		flush := func() error {
			if len(buf) == 0 {
				return nil
			}
			// CopyData ends the chunk with a newline.
			_, err := cd.CopyData(ctx, string(buf[:len(buf)-1]))
			buf = buf[:0]
			return err
		}
		c := 0
		for i := 0; i < len(pairs); c++ {
			j := i + 1
			for j < len(pairs) && pairs[j].client == pairs[i].client {
				j++
			}
			buf = strconv.AppendInt(buf, int64(pairs[i].client), 10)
			buf = append(buf, '\t')
			buf = strconv.AppendInt(buf, int64(pairs[i].day), 10)
			buf = append(buf, '\t')
			buf = strconv.AppendInt(buf, int64(pairs[j-1].day), 10)
			buf = append(buf, '\t')
			buf = strconv.AppendInt(buf, int64(j-i), 10)
			buf = append(buf, '\t')
			buf = purchases.Cents(s.monetary[c]).Append(buf)
			buf = append(buf, '\t')
			buf = strconv.AppendInt(buf, int64(s.bucket[c]), 10)
			buf = append(buf, '\t', '{')
			for k := i; k < j; k++ {
				if k > i {
					buf = append(buf, ',')
				}
				buf = strconv.AppendInt(buf, int64(pairs[k].day), 10)
			}
			buf = append(buf, '}', '\t', '{')
			for k := i; k < j; k++ {
				if k > i {
					buf = append(buf, ',')
				}
				buf = purchases.Cents(pairs[k].rev).Append(buf)
			}
			buf = append(buf, '}', '\n')
			if len(buf) >= 64<<10 {
				if err := flush(); err != nil {
					return err
				}
			}
			i = j
		}
		if err := flush(); err != nil {
			return err
		}
		//lint:ignore SA1019 lib/pq's COPY ends with an Exec without arguments.
		_, err = st.Exec(nil) //nolint:staticcheck
		return err
	})
}

// write stores client_events, cohort_activity and the RFM histograms.
func (s *clientSums) write(ctx context.Context, tx *sql.Tx) error {
	var days []string
	var d7, d30, newC []int64
	for x := range s.d7 {
		if s.d7[x] != 0 || s.d30[x] != 0 || s.newC[x] != 0 {
			days = append(days, epoch.AddDate(0, 0, int(s.firstDay)+x).Format(time.DateOnly))
			d7, d30, newC = append(d7, s.d7[x]), append(d30, s.d30[x]), append(newC, s.newC[x])
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO marts.client_events (day, d7, d30, new_clients)
		SELECT * FROM unnest($1::date[], $2::bigint[], $3::bigint[], $4::bigint[])`,
		pq.Array(days), pq.Array(d7), pq.Array(d30), pq.Array(newC)); err != nil {
		return fmt.Errorf("writing client_events: %w", err)
	}
	var cohort, month, revenue []string
	var active []int64
	monthText := func(m int32) string {
		return time.Date(2000+int(m/12), time.Month(m%12+1), 1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	}
	for k, c := range s.cohorts {
		cohort, month = append(cohort, monthText(k[0])), append(month, monthText(k[1]))
		active, revenue = append(active, c.active), append(revenue, purchases.Cents(c.revenue).String())
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO marts.cohort_activity (cohort_month, activity_month, active_clients, revenue)
		SELECT * FROM unnest($1::date[], $2::date[], $3::bigint[], $4::numeric[])`,
		pq.Array(cohort), pq.Array(month), pq.Array(active), pq.Array(revenue)); err != nil {
		return fmt.Errorf("writing cohort_activity: %w", err)
	}
	var measure []string
	var bucket, clients []int64
	for _, h := range []struct {
		measure string
		counts  map[int32]int64
	}{{"r", s.r}, {"f", s.f}, {"m", s.m}} {
		for b, n := range h.counts {
			measure, bucket, clients = append(measure, h.measure), append(bucket, int64(b)), append(clients, n)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO marts.rfm_histogram (measure, bucket, clients)
		SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[])`,
		pq.Array(measure), pq.Array(bucket), pq.Array(clients)); err != nil {
		return fmt.Errorf("writing the RFM histograms: %w", err)
	}
	return nil
}
