package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/marketplace-etl/marketplace-etl/internal/config"
	"github.com/marketplace-etl/marketplace-etl/internal/marts"
)

// martsCommand maintains the marts outside a pass: rebuild recomputes them
// from every loaded line, update drains the queue of changed days (what
// every pass does at its end).
func martsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	action := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	fs := newFlagSet("marts", "marts rebuild|update", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if action != "rebuild" && action != "update" {
		return usagef("marts %q: expected rebuild (recompute every mart from all loaded lines) or update (bring them up to date with the changed days)", action)
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat).With("command", "marts "+action)
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := prepareSchema(ctx, cfg, st); err != nil {
		return err
	}
	u := &marts.Updater{DB: st.DB(), Log: log, LockTimeout: cfg.MartsLockTimeout}
	run := u.Update
	if action == "rebuild" {
		run = u.Rebuild
	}
	res, err := run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "marts %s: %d day(s) in %s\n", action, res.Days, res.Duration.Round(time.Millisecond))
	return nil
}
