// Package chart holds the tests of the Helm chart in charts/marketplace: they render it with the
// pinned helm binary (./bin/helm, or $HELM_BIN) and strictly decode every manifest into the
// Kubernetes API types, so that a misspelt or misplaced field fails the build. It has no
// non-test code.
package chart
