package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// parsePass binds the pass flags over the environment and parses args.
func parsePass(t *testing.T, args ...string) (*passFlags, *flag.FlagSet, error) {
	t.Helper()
	fs := newFlagSet("backfill", "backfill", io.Discard)
	pf := bindPassFlags(fs)
	fs.Var(intFlag{&pf.cfg.ShardIndex, 0}, "shard-index", "")
	fs.Var(intFlag{&pf.cfg.ShardCount, 1}, "shard-count", "")
	return pf, fs, parseFlags(fs, args)
}

func TestFlagsOverrideTheEnvironment(t *testing.T) {
	t.Setenv("MARKETPLACE_API_URL", "http://env.example/data")
	t.Setenv("ETL_AUTO_MIGRATE", "true")
	t.Setenv("JOB_COMPLETION_INDEX", "3")
	t.Setenv("BACKFILL_SHARD_COUNT", "4")

	pf, _, err := parsePass(t)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pf.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIURL != "http://env.example/data" || !cfg.AutoMigrate || cfg.ShardIndex != 3 || cfg.ShardCount != 4 {
		t.Fatalf("without flags: %+v, want the environment's values", cfg)
	}

	pf, _, err = parsePass(t, "--api-url", "http://flag.example/data", "--no-migrate", "--shard-index=1", "--shard-count", "2")
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = pf.config(); err != nil {
		t.Fatal(err)
	}
	if cfg.APIURL != "http://flag.example/data" || cfg.AutoMigrate || cfg.ShardIndex != 1 || cfg.ShardCount != 2 {
		t.Fatalf("with flags: %+v, want the flags' values", cfg)
	}
}

func TestFlagOverridesABadVariableOfTheSameSetting(t *testing.T) {
	t.Setenv("JOB_COMPLETION_INDEX", "-1")
	pf, _, err := parsePass(t, "--shard-index", "0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pf.config(); err != nil {
		t.Fatalf("--shard-index 0 over JOB_COMPLETION_INDEX=-1: %v", err)
	}
}

func TestHelpPrintsTheFlagsAndExits0EvenWithABadEnvironment(t *testing.T) {
	t.Setenv("ETL_CATCHUP_DAYS", "seven")
	for _, cmd := range []string{"run", "backfill", "migrate", "check", "mockapi", "metabase-setup"} {
		for _, h := range []string{"-h", "--help", "-help"} {
			var stdout, stderr bytes.Buffer
			if code := run([]string{cmd, h}, &stdout, &stderr); code != ExitOK {
				t.Errorf("%s %s: exit %d, stderr %s", cmd, h, code, stderr.String())
			}
			if out := stderr.String(); !strings.HasPrefix(out, "Usage: marketplace-etl "+cmd) || !strings.Contains(out, "Exit codes:") {
				t.Errorf("%s %s printed %q, want the command's usage", cmd, h, out)
			}
		}
	}
	var stderr bytes.Buffer
	fs := newFlagSet("run", "run", &stderr)
	if err := parseFlags(fs, []string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v, want flag.ErrHelp", err)
	}
}

func TestBadFlagsAreOneUsageLine(t *testing.T) {
	t.Setenv("LOG_FORMAT", "text") // the plain failure line
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--date", "2023-02-30"}, `--date="2023-02-30": expected a date as YYYY-MM-DD`},
		{[]string{"run", "--date"}, "--date needs a value"},
		{[]string{"run", "--bogus"}, "unknown flag --bogus"},
		{[]string{"run", "extra"}, `unexpected argument "extra"`},
		{[]string{"run", "--api-url", "ftp://u:secret@x/data"}, `--api-url="ftp://u:xxxxx@x/data": expected an absolute http:// or https:// URL`},
		{[]string{"backfill"}, "--from is required"},
		{[]string{"backfill", "--from", "2023-01-01", "--force=maybe"}, `--force="maybe": expected true or false`},
		{[]string{"backfill", "--from", "2023-01-01", "--no-migrate=perhaps"}, `--no-migrate="perhaps": expected true or false`},
		{[]string{"backfill", "--from", "2023-01-01", "--shard-index", "-1"}, `--shard-index="-1": expected a whole number from 0`},
		{[]string{"backfill", "--from", "2023-01-01", "--shard-count", "two"}, `--shard-count="two": expected a whole number from 1`},
		{[]string{"backfill", "--from", "2023-01-01", "--to", "2023-01-02", "--shard-index", "2", "--shard-count", "2"}, "expected 0 <= --shard-index < --shard-count"},
		{[]string{"backfill", "--from", "2023-02-10", "--to", "2023-02-01"}, "--from 2023-02-10 is after --to 2023-02-01"},
		{[]string{"migrate", "sideways"}, `unknown migrate action "sideways"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		out := strings.TrimSpace(stderr.String())
		if code != ExitUsage || strings.Count(out, "\n") != 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line with %q", c.args, code, out, c.want)
		}
		if strings.Contains(out, "secret") {
			t.Errorf("%v: password in %q", c.args, out)
		}
	}
}

func TestBadEnvironmentIsOneUsageLine(t *testing.T) {
	t.Setenv("ETL_CATCHUP_DAYS", "seven")
	t.Setenv("LOG_FORMAT", "text")
	var stdout, stderr bytes.Buffer
	code := run([]string{"run", "--date", "2023-01-01"}, &stdout, &stderr)
	if out := strings.TrimSpace(stderr.String()); code != ExitUsage || out != `marketplace-etl run: ETL_CATCHUP_DAYS="seven": expected a whole number` {
		t.Fatalf("exit %d, stderr %q", code, out)
	}
}
