package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestPanicIsLoggedWithItsStackAndRetryable: a crash exits 1 (retryable),
// never 2 (configuration error), and says where it happened.
func TestPanicIsLoggedWithItsStackAndRetryable(t *testing.T) {
	t.Setenv("LOG_FORMAT", "json")
	var stderr bytes.Buffer
	code := func() (code int) {
		defer recoverCrash(&stderr, "run", &code)
		panic("boom")
	}()
	out := stderr.String()
	if code != ExitRetryable {
		t.Fatalf("exit code %d, want %d", code, ExitRetryable)
	}
	if !strings.Contains(out, `"msg":"command crashed"`) || !strings.Contains(out, "panic: boom") || !strings.Contains(out, "TestPanicIsLoggedWithItsStackAndRetryable") {
		t.Fatalf("the log does not carry the panic and its stack:\n%s", out)
	}
}
