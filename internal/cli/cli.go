// Package cli is marketplace-etl's command line: it parses flags over the
// environment's configuration, wires the domain packages together and maps
// every outcome to a documented exit code.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/marketplace-etl/marketplace-etl/internal/config"
	"github.com/marketplace-etl/marketplace-etl/internal/redact"
)

// version is stamped at build time with -ldflags.
var version = "dev"

// Exit codes, documented in the README and in --help.
const (
	ExitOK        = 0 // success
	ExitRetryable = 1 // API or database unavailable, timeouts, interrupted: worth retrying
	ExitUsage     = 2 // bad flag, bad environment value, a date that has not ended yet
	ExitData      = 3 // data-contract failure: a day's reject ratio above ETL_MAX_REJECT_RATIO
)

const usage = `marketplace-etl loads Marketplace API purchase lines into PostgreSQL, one pass per invocation.

Usage:
  marketplace-etl <command> [flags]

Commands:
  run [--date YYYY-MM-DD]              the daily pass: yesterday (ETL_TIMEZONE) plus catch-up of the
                                       last ETL_CATCHUP_DAYS days not loaded yet; or exactly --date
  backfill --from DATE [--to DATE]     historical load, resumable; [--force] re-fetches loaded days;
           [--shard-index i --shard-count n]  one shard of the range (JOB_COMPLETION_INDEX, BACKFILL_SHARD_COUNT)
  migrate [up|status]                  apply or show the embedded schema migrations
  check                                verify configuration, database, schema version and API
  marts rebuild|update                 recompute every mart from all loaded lines, or bring them up to
                                       date with the changed days (every run and backfill does that)
  mockapi [--listen :8080] [...]       serve the Marketplace API simulator
  metabase-setup                       create or update the Metabase database, collection and dashboards
  version                              print the version

Run 'marketplace-etl <command> --help' for the flags of a command.
Configuration comes from the environment (see README); flags override it.

Exit codes:
  0  success
  1  failure worth retrying (API or database unavailable, timeouts, interrupted)
  2  usage or configuration error (bad flag or environment value, a date that has not ended yet)
  3  data-contract failure (a day's rejected share above ETL_MAX_REJECT_RATIO; the day is not loaded)
`

// usageError is a bad command line: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError carries an exit code decided by a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// loggedError is a failure the command has already logged in full ("pass
// failed"): the process ends without a second line for the same event.
type loggedError struct{ error }

func (e loggedError) Unwrap() error { return e.error }

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	return run(args, os.Stdout, os.Stderr)
}

func run(args []string, stdout, stderr io.Writer) (code int) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	defer recoverCrash(stderr, args[0], &code)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = runCommand(ctx, rest, stderr)
	case "backfill":
		err = backfillCommand(ctx, rest, stderr)
	case "migrate":
		err = migrateCommand(ctx, rest, stdout, stderr)
	case "check":
		err = checkCommand(ctx, rest, stdout, stderr)
	case "marts":
		err = martsCommand(ctx, rest, stdout, stderr)
	case "mockapi":
		err = mockapiCommand(ctx, rest, stderr)
	case "metabase-setup":
		err = metabaseCommand(ctx, rest, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "marketplace-etl", version)
		return ExitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	default:
		err = usagef("unknown command %q: expected one of run, backfill, migrate, check, marts, mockapi, metabase-setup, version", cmd)
	}
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	code = exitCode(err)
	if !errors.As(err, new(loggedError)) {
		reportFailure(stderr, cmd, code, err)
	}
	return code
}

// panicError is a recovered panic with the stack where it happened.
type panicError struct {
	value any
	stack []byte
}

func newPanicError(p any) *panicError { return &panicError{value: p, stack: debug.Stack()} }

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// recoverCrash, deferred, turns a panic into a logged stack trace and the
// retryable exit code: a crash is a bug, not a configuration error, and
// Go's own exit code for a panic, 2, would tell Kubernetes not to retry.
func recoverCrash(stderr io.Writer, cmd string, code *int) {
	p := recover()
	if p == nil {
		return
	}
	pe, ok := p.(*panicError)
	if !ok {
		pe = newPanicError(p)
	}
	reportPanic(stderr, cmd, pe)
	*code = ExitRetryable
}

// reportPanic logs a crash with its stack trace, as JSON when the logs are.
func reportPanic(stderr io.Writer, cmd string, pe *panicError) {
	if logFormat(stderr, os.Getenv("LOG_FORMAT")) == "json" {
		newLogger(stderr, "error", "json").Error("command crashed", "command", cmd, "exit_code", ExitRetryable,
			"err", pe.Error(), "stack", string(pe.stack))
		return
	}
	fmt.Fprintf(stderr, "marketplace-etl %s: %s (a bug; exit %d)\n%s", cmd, pe.Error(), ExitRetryable, pe.stack)
}

// reportFailure writes the last line of a failed command: a JSON log line
// when the logs are JSON, so that a collector parses every line, else one
// plain line for the human at the terminal. The command's configuration may
// be what failed, so LOG_FORMAT is read here directly.
func reportFailure(stderr io.Writer, cmd string, code int, err error) {
	if logFormat(stderr, os.Getenv("LOG_FORMAT")) == "json" {
		newLogger(stderr, "error", "json").Error("command failed", "command", cmd, "exit_code", code, "err", oneLine(err.Error()))
		return
	}
	fmt.Fprintf(stderr, "marketplace-etl %s: %s\n", cmd, oneLine(err.Error()))
}

func exitCode(err error) int {
	var ee *exitError
	var ue *usageError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue), config.IsConfigError(err):
		return ExitUsage
	}
	return ExitRetryable
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// newFlagSet makes a flag set whose errors become one-line usage errors;
// its Usage, shown for --help, prints the command's synopsis and flags.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: marketplace-etl %s\n\nFlags:\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			arg, help := flag.UnquoteUsage(f)
			if _, ok := f.Value.(*dateFlag); ok {
				arg = "YYYY-MM-DD"
			}
			if arg != "" {
				arg = " " + arg
			}
			fmt.Fprintf(stderr, "  --%s%s\n    \t%s", f.Name, arg, help)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
		fmt.Fprint(stderr, "\nExit codes: 0 success, 1 retryable failure, 2 usage/configuration error, 3 data-contract failure.\n")
	}
	return fs
}

// parseFlags parses args into fs. --help prints fs.Usage and returns
// flag.ErrHelp; any other error is one usage line.
func parseFlags(fs *flag.FlagSet, args []string) error {
	// Parse calls Usage on every error too: keep it for --help only.
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage()
		return err
	case err != nil:
		return usagef("%s (see --help)", flagError(err))
	case fs.NArg() > 0:
		return usagef("unexpected argument %q (see --help)", fs.Arg(0))
	}
	return nil
}

// flagErrorForms are the flag package's error sentences, which name a flag
// with one dash; the command line documents two.
var flagErrorForms = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`^invalid boolean value ("(?:[^"\\]|\\.)*") for -(\S+): .*$`), "--$2=$1: expected true or false"},
	{regexp.MustCompile(`^invalid value ("(?:[^"\\]|\\.)*") for flag -(\S+): `), "--$2=$1: "},
	{regexp.MustCompile(`^flag needs an argument: -(\S+)$`), "--$1 needs a value"},
	{regexp.MustCompile(`^flag provided but not defined: -(\S+)$`), "unknown flag --$1"},
}

func flagError(err error) string {
	msg := redact.String(err.Error())
	for _, f := range flagErrorForms {
		if f.re.MatchString(msg) {
			msg = f.re.ReplaceAllString(msg, f.repl)
			break
		}
	}
	return msg
}
