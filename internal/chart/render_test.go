package chart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kubeVersion is the cluster version the chart is rendered for (its kubeVersion floor is 1.29).
const kubeVersion = "1.34.0"

// repoRoot is the module root, two directories above this file.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// helmBin is $HELM_BIN or ./bin/helm. A missing helm is a failure, never a skip: `make tools`
// installs the pinned one. Only -short, which runs no external program, skips the test.
func helmBin(t *testing.T, root string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs helm: runs without -short (make test-go)")
	}
	bin := os.Getenv("HELM_BIN")
	if bin == "" {
		bin = filepath.Join(root, "bin", "helm")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm not found at %s (%v): run `make tools` (or set HELM_BIN)", bin, err)
	}
	return bin
}

// renderCase is one `helm template` invocation.
type renderCase struct {
	name   string
	files  []string // values files, relative to the chart
	set    []string // --set arguments
	expect []string // "Kind/name" objects that must be rendered
}

func cases(t *testing.T, chartDir string) []renderCase {
	cs := []renderCase{
		{name: "defaults", expect: []string{
			"CronJob/rel-marketplace-daily", "StatefulSet/rel-marketplace-postgresql",
			"Secret/rel-marketplace-postgresql", "Deployment/rel-marketplace-metabase",
			"Job/rel-marketplace-migrate", "CronJob/rel-marketplace-backfill", "Pod/rel-marketplace-test-check",
			"ConfigMap/rel-marketplace-etl", "ConfigMap/rel-marketplace-postgresql-init",
		}},
		{name: "backfill-open-range", set: []string{"backfill.enabled=true", "backfill.from=2024-02-01"}},
		{name: "everything-off", set: []string{
			"daily.enabled=false", "metabase.enabled=false", "tests.enabled=false",
			"postgresql.enabled=false", "externalDatabase.host=db", "externalDatabase.existingSecret=db",
			"serviceAccount.create=false",
		}},
	}
	ciFiles, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil || len(ciFiles) == 0 {
		t.Fatalf("no values files under %s/ci (%v)", chartDir, err)
	}
	for _, f := range ciFiles {
		rel, _ := filepath.Rel(chartDir, f)
		cs = append(cs, renderCase{name: strings.TrimSuffix(filepath.Base(f), ".yaml"), files: []string{rel}})
	}
	return cs
}

func TestRenderedManifestsDecodeStrictly(t *testing.T) {
	root := repoRoot(t)
	helm := helmBin(t, root)
	chartDir := filepath.Join(root, "charts", "marketplace")
	for _, c := range cases(t, chartDir) {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"template", "rel", chartDir, "--namespace", "etl", "--kube-version", kubeVersion}
			for _, f := range c.files {
				args = append(args, "--values", filepath.Join(chartDir, f))
			}
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			cmd := exec.Command(helm, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			docs := splitDocuments(out)
			if len(docs) == 0 {
				t.Fatal("helm rendered no manifests")
			}
			seen := map[string]bool{}
			for i, doc := range docs {
				obj, key, err := decodeStrict(doc)
				if err != nil {
					t.Errorf("manifest %d: %v\n%s", i, err, doc)
					continue
				}
				if seen[key] {
					t.Errorf("%s rendered twice", key)
				}
				seen[key] = true
				for _, problem := range checkObject(obj) {
					t.Errorf("%s: %s", key, problem)
				}
			}
			for _, want := range c.expect {
				if !seen[want] {
					t.Errorf("%s was not rendered; got %v", want, keys(seen))
				}
			}
		})
	}
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// splitDocuments splits a multi-document YAML stream, dropping empty and comment-only documents.
func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(b), -1) {
		meaningful := false
		for _, line := range strings.Split(d, "\n") {
			l := strings.TrimSpace(line)
			if l != "" && !strings.HasPrefix(l, "#") {
				meaningful = true
				break
			}
		}
		if meaningful {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// prometheusRule is the subset of monitoring.coreos.com/v1 PrometheusRule the chart renders
// (not in k8s.io/api; strictly decoded all the same).
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name     string            `json:"name"`
			Interval string            `json:"interval,omitempty"`
			Labels   map[string]string `json:"labels,omitempty"`
			Rules    []struct {
				Alert         string            `json:"alert,omitempty"`
				Record        string            `json:"record,omitempty"`
				Expr          string            `json:"expr"`
				For           string            `json:"for,omitempty"`
				KeepFiringFor string            `json:"keep_firing_for,omitempty"`
				Labels        map[string]string `json:"labels,omitempty"`
				Annotations   map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// serviceMonitor is the subset of monitoring.coreos.com/v1 ServiceMonitor the chart renders.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			HonorLabels   bool   `json:"honorLabels,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// newObject returns an empty typed object for a rendered apiVersion and kind.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + "/" + kind {
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1/Secret":
		return &corev1.Secret{}, nil
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "v1/Pod":
		return &corev1.Pod{}, nil
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "batch/v1/CronJob":
		return &batchv1.CronJob{}, nil
	case "batch/v1/Job":
		return &batchv1.Job{}, nil
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}, nil
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &prometheusRule{}, nil
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &serviceMonitor{}, nil
	}
	return nil, fmt.Errorf("unexpected object %s %s: add it to newObject", apiVersion, kind)
}

// decodeStrict converts one YAML manifest to JSON and decodes it into its API type, rejecting
// unknown, duplicate and wrongly-cased fields.
func decodeStrict(doc []byte) (any, string, error) {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, "", fmt.Errorf("invalid YAML: %w", err)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, "", fmt.Errorf("no apiVersion/kind: %w", err)
	}
	obj, err := newObject(tm.APIVersion, tm.Kind)
	if err != nil {
		return nil, "", err
	}
	// The API server's own decoder: case-sensitive field names, unknown and duplicate fields are
	// errors (encoding/json alone would match "readOnlyRootFileSystem" case-insensitively).
	strictErrs, err := sigsjson.UnmarshalStrict(j, obj, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if len(strictErrs) > 0 {
		return nil, "", fmt.Errorf("%s: %w", tm.Kind, errors.Join(strictErrs...))
	}
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	_ = json.Unmarshal(j, &meta)
	if meta.Metadata.Name == "" {
		return nil, "", fmt.Errorf("%s without metadata.name", tm.Kind)
	}
	if len(meta.Metadata.Name) > 63 {
		return nil, "", fmt.Errorf("%s name %q is longer than 63 characters", tm.Kind, meta.Metadata.Name)
	}
	for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by"} {
		if meta.Metadata.Labels[l] == "" {
			return nil, "", fmt.Errorf("%s/%s lacks label %s", tm.Kind, meta.Metadata.Name, l)
		}
	}
	return obj, tm.Kind + "/" + meta.Metadata.Name, nil
}

// checkObject applies the chart's own rules to the pods an object would create: hardened
// security contexts, resources, restartPolicy and the Job failure policy.
func checkObject(obj any) []string {
	var problems []string
	switch o := obj.(type) {
	case *appsv1.Deployment:
		problems = checkPod(&o.Spec.Template.Spec)
	case *appsv1.StatefulSet:
		problems = checkPod(&o.Spec.Template.Spec)
	case *corev1.Pod:
		problems = checkPod(&o.Spec)
	case *batchv1.Job:
		problems = append(checkPod(&o.Spec.Template.Spec), checkJob(&o.Spec)...)
	case *batchv1.CronJob:
		problems = append(checkPod(&o.Spec.JobTemplate.Spec.Template.Spec), checkJob(&o.Spec.JobTemplate.Spec)...)
		if o.Spec.TimeZone == nil || *o.Spec.TimeZone == "" {
			problems = append(problems, "CronJob without timeZone")
		}
		if o.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
			problems = append(problems, "CronJob concurrencyPolicy is not Forbid")
		}
	}
	return problems
}

func checkJob(spec *batchv1.JobSpec) []string {
	var problems []string
	if spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		problems = append(problems, "Job pods must have restartPolicy Never")
	}
	if spec.PodFailurePolicy == nil || len(spec.PodFailurePolicy.Rules) == 0 {
		problems = append(problems, "Job without podFailurePolicy")
	}
	if spec.ActiveDeadlineSeconds == nil {
		problems = append(problems, "Job without activeDeadlineSeconds")
	}
	if spec.TTLSecondsAfterFinished == nil {
		problems = append(problems, "Job without ttlSecondsAfterFinished")
	}
	return problems
}

func checkPod(spec *corev1.PodSpec) []string {
	var problems []string
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		problems = append(problems, "pod securityContext.runAsNonRoot is not true")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		problems = append(problems, "pod seccompProfile is not RuntimeDefault")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		problems = append(problems, "pod mounts a ServiceAccount token")
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			problems = append(problems, c.Name+": no securityContext")
			continue
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			problems = append(problems, c.Name+": readOnlyRootFilesystem is not true")
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			problems = append(problems, c.Name+": allowPrivilegeEscalation is not false")
		case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL":
			problems = append(problems, c.Name+": capabilities do not drop ALL")
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			problems = append(problems, c.Name+": memory request or limit missing")
		}
		if !strings.Contains(c.Image, ":") && !strings.Contains(c.Image, "@") {
			problems = append(problems, c.Name+": image "+c.Image+" is not pinned")
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] && m.Name != "data" { // data: the StatefulSet's volumeClaimTemplate
				problems = append(problems, fmt.Sprintf("%s: volumeMount %s has no volume", c.Name, m.Name))
			}
		}
	}
	return problems
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestDecodeStrictRejectsUnknownFields guards the guard: a misplaced field must fail.
func TestDecodeStrictRejectsUnknownFields(t *testing.T) {
	doc := []byte("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\n  labels: {app.kubernetes.io/name: a, app.kubernetes.io/instance: b, app.kubernetes.io/managed-by: c}\nspec:\n  backoffLimitt: 1\n")
	if _, _, err := decodeStrict(doc); err == nil || !strings.Contains(err.Error(), "backoffLimitt") {
		t.Fatalf("decodeStrict accepted an unknown field: %v", err)
	}
	doc = []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  labels: {app.kubernetes.io/name: a, app.kubernetes.io/instance: b, app.kubernetes.io/managed-by: c}\nspec:\n  containers:\n    - name: c\n      securityContext: {readOnlyRootFileSystem: true}\n")
	if _, _, err := decodeStrict(doc); err == nil || !strings.Contains(err.Error(), "readOnlyRootFileSystem") {
		t.Fatalf("decodeStrict accepted a misspelt nested field: %v", err)
	}
}
