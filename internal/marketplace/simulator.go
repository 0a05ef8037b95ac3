package marketplace

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// SimConfig shapes the simulator's data and its injected faults. The zero
// fault rates give the API's normal behaviour, quirks included at their real
// rates (quantity 0 on about 2 % of lines, a time of day past midnight on
// about 1 line in 60,000, free lines, whole numbers sent as 12.0).
type SimConfig struct {
	Seed       uint64 // changes every day's content, like an upstream correction
	RowsPerDay int    // fixed lines per day; 0 means 1,000..10,000 varying by date

	ErrorRate     float64       // share of requests answered 500..503
	RateLimitRate float64       // share answered 429 with Retry-After: 1
	ResetRate     float64       // share whose connection is closed without a response
	TruncateRate  float64       // share whose body is cut off mid-JSON
	HTMLErrorRate float64       // share answered 200 with a non-JSON error page
	EmptyRate     float64       // share answered [] for a day that has data
	MixedDateRate float64       // share of lines carrying another date
	NullRate      float64       // share of lines whose fields are all null
	Latency       time.Duration // added before every answer
	StallAfter    time.Duration // on truncated bodies, hang this long before cutting
	FailFirst     int           // the first N requests of each date fail with 503
	ParallelMix   bool          // overlapping requests get 5 % lines of other dates, as reported of the real API
	FailDates     map[string]bool

	// Hostile answers (issue 13), limited like the rate-based faults:
	LongLineBytes int           // an extra first element of this many bytes (a valid object)
	TrickleEvery  time.Duration // the body goes out one byte per interval: it never stalls, it just never ends
	GzipBombBytes int64         // answer a gzip body that expands to an array of this many spaces
	TrailingData  string        // written after the closing bracket
	ErrorBody     string        // the body of 5xx answers (e.g. a long page in Russian)

	// FaultFirst, when above 0, limits the rate-based faults and the latency
	// to the first N requests of each date: with a rate of 1 the first N
	// answers are faulty and the next ones clean (a deterministic burst).
	FaultFirst int
	// FaultDates, when not nil, limits the rate-based faults and the latency
	// to these dates: with a rate of 1 a fault persists on them only.
	FaultDates map[string]bool
}

// Simulator serves GET /data?date=YYYY-MM-DD like the Marketplace API, plus
// GET /healthz and GET /stats?date= (the simulator's own truth for tests).
type Simulator struct {
	cfg      SimConfig
	inFlight atomic.Int64
	requests atomic.Int64
	mu       sync.Mutex
	perDate  map[string]int
}

// NewSimulator makes a simulator.
func NewSimulator(cfg SimConfig) *Simulator {
	return &Simulator{cfg: cfg, perDate: map[string]int{}}
}

// Requests is how many /data requests were served.
func (s *Simulator) Requests() int64 { return s.requests.Load() }

func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	case "/data":
		s.serveData(w, r)
	case "/stats":
		s.serveStats(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Simulator) serveData(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	date := r.URL.Query().Get("date")
	day, err := time.Parse(time.DateOnly, date)
	nth := 0
	if err == nil {
		s.mu.Lock()
		s.perDate[date]++
		nth = s.perDate[date]
		s.mu.Unlock()
	}
	cfg := s.cfg
	if (cfg.FaultDates != nil && !cfg.FaultDates[date]) || (cfg.FaultFirst > 0 && nth > cfg.FaultFirst) {
		cfg.ErrorRate, cfg.RateLimitRate, cfg.ResetRate, cfg.TruncateRate = 0, 0, 0, 0
		cfg.HTMLErrorRate, cfg.EmptyRate, cfg.MixedDateRate, cfg.NullRate, cfg.Latency = 0, 0, 0, 0, 0
		cfg.LongLineBytes, cfg.TrickleEvery, cfg.GzipBombBytes, cfg.TrailingData, cfg.ErrorBody = 0, 0, 0, "", ""
	}
	fail := func(code int, text string) {
		if cfg.ErrorBody != "" {
			text = cfg.ErrorBody
		}
		http.Error(w, text, code)
	}
	if cfg.Latency > 0 {
		select {
		case <-time.After(cfg.Latency):
		case <-r.Context().Done():
			return
		}
	}
	// The real API serves an HTML content type whatever the body is.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("<html><body><h1>Internal Server Error</h1></body></html>"))
		return
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(s.requests.Load())))
	switch {
	case cfg.FailDates[date]:
		fail(http.StatusInternalServerError, "Internal Server Error")
		return
	case nth <= cfg.FailFirst:
		fail(http.StatusServiceUnavailable, "Service Unavailable")
		return
	case chance(rng, cfg.ErrorRate):
		fail(500+rng.IntN(4), "Bad Gateway")
		return
	case chance(rng, cfg.RateLimitRate):
		w.Header().Set("Retry-After", "1")
		http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
		return
	case chance(rng, cfg.ResetRate):
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
					_ = tc.SetLinger(0) // RST instead of FIN
				}
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case chance(rng, cfg.HTMLErrorRate):
		_, _ = w.Write([]byte("<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"))
		return
	}
	if day.Before(FirstDay) {
		_, _ = w.Write([]byte(NoDataSentence))
		return
	}
	if chance(rng, cfg.EmptyRate) {
		_, _ = w.Write([]byte("[]"))
		return
	}
	if cfg.GzipBombBytes > 0 {
		w.Header().Set("Content-Encoding", "gzip")
		zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
		zw.Write([]byte("["))
		io.Copy(zw, io.LimitReader(repeated(' '), cfg.GzipBombBytes))
		zw.Write([]byte("]"))
		zw.Close()
		return
	}
	truncate := chance(rng, cfg.TruncateRate)
	n := s.rowsFor(date)
	cut := -1
	if truncate {
		// Before one of the n lines: a cut after the last one would be
		// a complete body, and a "persistent" fault would let the day load.
		cut = rng.IntN(max(n, 1))
	}
	// Parallel requests to the real API were seen to mix rows of dates.
	mixed := cfg.MixedDateRate
	if cfg.ParallelMix && s.inFlight.Load() > 1 && mixed == 0 {
		mixed = 0.05
	}
	var out io.Writer = w
	if cfg.TrickleEvery > 0 {
		out = &trickle{w: w, every: cfg.TrickleEvery, done: r.Context().Done()}
	}
	bw := bufio.NewWriterSize(out, 32<<10)
	defer bw.Flush()
	bw.WriteByte('[')
	if cfg.LongLineBytes > 0 {
		const head, tail = `{"padding": "`, `"}`
		bw.WriteString(head)
		io.Copy(bw, io.LimitReader(repeated('x'), int64(max(cfg.LongLineBytes-len(head)-len(tail), 0))))
		bw.WriteString(tail)
		if n > 0 {
			bw.WriteString(", ")
		}
	}
	buf := make([]byte, 0, 320)
	perm := rng.Perm(n) // the row order changes on every call
	for i, idx := range perm {
		if i == cut {
			if i > 0 {
				bw.WriteString(", ")
			}
			bw.Write([]byte(`{"client_id": 5`))
			bw.Flush()
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			if cfg.StallAfter > 0 {
				select {
				case <-time.After(cfg.StallAfter):
				case <-r.Context().Done():
				}
			}
			return
		}
		if i > 0 {
			bw.WriteString(", ")
		}
		l := s.line(day, date, idx)
		switch {
		case chance(rng, cfg.NullRate):
			bw.WriteString(allNullLine)
			continue
		case chance(rng, mixed):
			l.date = day.AddDate(0, 0, -1-rng.IntN(3)).Format(time.DateOnly)
		}
		buf = l.appendJSON(buf[:0])
		bw.Write(buf)
	}
	bw.WriteByte(']')
	bw.WriteString(cfg.TrailingData)
}

// repeated is an endless reader of one byte: filler for hostile bodies.
type repeated byte

func (r repeated) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// trickle sends a body one byte per interval, flushing each: a server that
// is never silent long enough for a stall timeout.
type trickle struct {
	w     http.ResponseWriter
	every time.Duration
	done  <-chan struct{}
}

func (t *trickle) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := t.w.Write(p[i : i+1]); err != nil {
			return i, err
		}
		if f, ok := t.w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case <-time.After(t.every):
		case <-t.done:
			return i + 1, io.ErrClosedPipe
		}
	}
	return len(p), nil
}

const allNullLine = `{"client_id": null, "gender": null, "purchase_datetime": null, "purchase_time_as_seconds_from_midnight": null, "product_id": null, "quantity": null, "price_per_item": null, "discount_per_item": null, "total_price": null}`

func chance(rng *rand.Rand, p float64) bool { return p > 0 && rng.Float64() < p }

// DayStats is the simulator's truth about one date's normal content.
type DayStats struct {
	Date       string `json:"date"`
	Lines      int    `json:"lines"`
	ValidLines int    `json:"valid_lines"`
	Units      int64  `json:"units"`
	Revenue    int64  `json:"revenue"` // sum of total_price of valid lines, whole money units
}

// Stats computes the date's content the way a correct loader must see it.
func (s *Simulator) Stats(date string) DayStats {
	day, err := time.Parse(time.DateOnly, date)
	st := DayStats{Date: date}
	if err != nil || day.Before(FirstDay) {
		return st
	}
	st.Lines = s.rowsFor(date)
	for i := 0; i < st.Lines; i++ {
		l := s.line(day, date, i)
		if l.quantity == 0 || l.seconds >= 86400 {
			continue
		}
		st.ValidLines++
		st.Units += l.quantity
		st.Revenue += l.quantity * (l.price - l.discount)
	}
	return st
}

func (s *Simulator) serveStats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Stats(r.URL.Query().Get("date")))
}

func (s *Simulator) daySeed(date string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(date))
	return h.Sum64() ^ (s.cfg.Seed * 0x9E3779B97F4A7C15)
}

func (s *Simulator) rowsFor(date string) int {
	if s.cfg.RowsPerDay > 0 {
		return s.cfg.RowsPerDay
	}
	return 1000 + int(splitmix(s.daySeed(date))%9001)
}

type simLine struct {
	client, product, quantity, price, discount, seconds int64
	gender                                              byte
	date                                                string
	floats                                              bool
}

// line generates line i of a date from a counter-based generator, so any line
// can be made without the others and the content never depends on order.
func (s *Simulator) line(day time.Time, date string, i int) simLine {
	x := s.daySeed(date) + uint64(i)*0xD1B54A32D192ED03
	next := func() uint64 { x = splitmix(x); return x }
	l := simLine{date: date}
	l.client = int64(next() % 1_000_000)
	l.gender = "MF"[splitmix(uint64(l.client)^0xA5A5)%2]
	l.product = int64(next() % 50_000)
	// Prices are fixed per product, log-uniform over 1..100,000.
	l.price = int64(math.Round(math.Exp(float64(splitmix(uint64(l.product)+77)%1_000_000) / 1_000_000 * math.Log(100_000))))
	if l.price < 1 {
		l.price = 1
	}
	switch r := next() % 1_000_000; {
	case r < 125: // ~250 free lines a year
		l.discount = l.price
	case r < 300_000:
		l.discount = int64(next() % uint64(l.price/2+1))
	}
	if next()%100 < 2 {
		l.quantity = 0
	} else {
		l.quantity = 1 + int64(next()%uint64(1+next()%99))
	}
	l.seconds = int64(next() % 86400)
	if next()%60_000 == 0 { // a few lines a year carry a time past midnight
		l.seconds = 86400 + int64(next()%3600)
	}
	l.floats = next()%10 == 0
	return l
}

func (l *simLine) appendJSON(b []byte) []byte {
	num := func(b []byte, v int64) []byte {
		b = strconv.AppendInt(b, v, 10)
		if l.floats {
			b = append(b, '.', '0')
		}
		return b
	}
	b = append(b, `{"client_id": `...)
	b = strconv.AppendInt(b, l.client, 10)
	b = append(b, `, "gender": "`...)
	b = append(b, l.gender)
	b = append(b, `", "purchase_datetime": "`...)
	b = append(b, l.date...)
	b = append(b, `", "purchase_time_as_seconds_from_midnight": `...)
	b = strconv.AppendInt(b, l.seconds, 10)
	b = append(b, `, "product_id": `...)
	b = strconv.AppendInt(b, l.product, 10)
	b = append(b, `, "quantity": `...)
	b = strconv.AppendInt(b, l.quantity, 10)
	b = append(b, `, "price_per_item": `...)
	b = num(b, l.price)
	b = append(b, `, "discount_per_item": `...)
	b = num(b, l.discount)
	b = append(b, `, "total_price": `...)
	b = num(b, l.quantity*(l.price-l.discount))
	return append(b, '}')
}

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}
