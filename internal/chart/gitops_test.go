package chart

import (
	"bytes"
	"testing"
)

// TestGitOpsRendersAreStable renders the chart twice the way Argo CD does (`helm template`, no
// cluster to `lookup`) with every option that creates objects switched on: the two renders must be
// identical, or every sync would change the release (new passwords, new Jobs).
func TestGitOpsRendersAreStable(t *testing.T) {
	set := []string{
		"gitOps=true", "postgresql.auth.existingSecret=db", "metabase.existingSecret=mb",
		"backfill.enabled=true", "backfill.from=2024-01-01", "backfill.to=2024-01-31",
		"pushgateway.enabled=true", "mockApi.enabled=true", "networkPolicy.enabled=true",
		"metabase.ingress.enabled=true", "metrics.prometheusRule.enabled=true",
	}
	first := bytes.Join(render(t, set...), []byte("---\n"))
	second := bytes.Join(render(t, set...), []byte("---\n"))
	if !bytes.Equal(first, second) {
		a, b := splitDocuments(first), splitDocuments(second)
		for i := range a {
			if i < len(b) && !bytes.Equal(a[i], b[i]) {
				t.Fatalf("two renders differ, first in:\n%s\n--- versus ---\n%s", a[i], b[i])
			}
		}
		t.Fatalf("two renders differ (%d and %d documents)", len(a), len(b))
	}
	if bytes.Contains(first, []byte("helm.sh/hook: post-")) {
		t.Error("gitOps render has post-install/post-upgrade hooks")
	}
}
