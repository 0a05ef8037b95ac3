package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/push"

	"github.com/marketplace-etl/marketplace-etl/internal/redact"
)

// A backfill shard pushes only while its Job runs, so its group would keep
// a failure or a stuck start on the gateway, and the alerts on it firing,
// for ever. A shard that succeeds therefore deletes its group, and shard 0
// of a backfill deletes the groups of shard indexes that this backfill does
// not have, left by an earlier one with more shards.

// deleteGroup removes the run's group from the Pushgateway; a failure is
// logged as a warning and returned.
func (r *Recorder) deleteGroup() error {
	return r.deleteGrouping(r.grouping, "delete")
}

func (r *Recorder) deleteGrouping(g map[string]string, what string) error {
	p := push.New(r.opts.URL, r.opts.Job).Client(r.client)
	for k, v := range g {
		p = p.Grouping(k, v)
	}
	if r.opts.Username != "" {
		p = p.BasicAuth(r.opts.Username, r.opts.Password)
	}
	if err := p.Delete(); err != nil {
		err = fmt.Errorf("deleting the metrics group %v from the Pushgateway at %s: %w", g, r.opts.URL, err)
		r.log.Warn("could not delete a metrics group; its alerts may not clear", "push", what,
			"pushgateway", redact.String(r.opts.URL), "err", redactErr(err, r.opts))
		return err
	}
	r.log.Debug("deleted a metrics group", "push", what, "pushgateway", redact.String(r.opts.URL), "grouping", g)
	return nil
}

// dropSupersededShards deletes the backfill groups of the same job and
// grouping labels whose shard index is at least count.
func (r *Recorder) dropSupersededShards(count int) error {
	groups, err := r.listGroups()
	if err != nil {
		r.log.Warn("could not list the Pushgateway's groups; the groups of an earlier backfill's extra shards stay",
			"pushgateway", redact.String(r.opts.URL), "err", redactErr(err, r.opts))
		return err
	}
	for _, g := range groups {
		shard, err := strconv.Atoi(g["shard"])
		if err != nil || shard < count || !r.sameGroupButShard(g) {
			continue
		}
		delete(g, "job")
		if err := r.deleteGrouping(g, "superseded"); err != nil {
			return err
		}
	}
	return nil
}

// sameGroupButShard tells whether g has exactly the run's job and grouping
// labels, the shard aside.
func (r *Recorder) sameGroupButShard(g map[string]string) bool {
	if g["job"] != r.opts.Job || len(g) != len(r.grouping)+1 {
		return false
	}
	for k, v := range r.grouping {
		if k != "shard" && g[k] != v {
			return false
		}
	}
	return true
}

// listGroups reads the grouping labels of every group on the gateway
// (GET /api/v1/metrics).
func (r *Recorder) listGroups() ([]map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout)
	defer cancel()
	url := strings.TrimSuffix(r.opts.URL, "/") + "/api/v1/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("listing the Pushgateway's groups: %w", err)
	}
	if r.opts.Username != "" {
		req.SetBasicAuth(r.opts.Username, r.opts.Password)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("listing the Pushgateway's groups: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("listing the Pushgateway's groups: GET %s answered %s", redact.String(url), resp.Status)
	}
	var body struct {
		Data []struct {
			Labels map[string]string `json:"labels"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("listing the Pushgateway's groups: decoding the answer of %s: %w", redact.String(url), err)
	}
	out := make([]map[string]string, 0, len(body.Data))
	for _, d := range body.Data {
		out = append(out, d.Labels)
	}
	return out, nil
}
