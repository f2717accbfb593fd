package test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const (
	chartDir   = root + "/deployments/helm/wahook"
	chartRules = chartDir + "/files/rules.yml"
	// sourceRules are the alert rules docker-compose's Prometheus loads.
	sourceRules = root + "/deployments/prometheus/rules.yml"
	// kubeVersion is the cluster the chart is rendered for: the oldest it
	// supports (the pod-index label).
	kubeVersion = "v1.28.0"
)

// manifests are a rendering's objects, decoded strictly into their API
// types, by kind and name.
type manifests struct {
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	services     map[string]*corev1.Service
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs         map[string]*policyv1.PodDisruptionBudget
	monitors     map[string]*monitoringv1.ServiceMonitor
	rules        map[string]*monitoringv1.PrometheusRule
}

func (m *manifests) kinds() []string {
	var k []string
	add := func(kind string, n int) {
		for range n {
			k = append(k, kind)
		}
	}
	add("Deployment", len(m.deployments))
	add("StatefulSet", len(m.statefulSets))
	add("Service", len(m.services))
	add("HorizontalPodAutoscaler", len(m.hpas))
	add("PodDisruptionBudget", len(m.pdbs))
	add("ServiceMonitor", len(m.monitors))
	add("PrometheusRule", len(m.rules))
	return k
}

// render renders the chart as `helm template` does, with strict templates
// (a value the templates use but values.yaml lacks is an error), and
// decodes every manifest strictly: a field the API type lacks, or a value
// of the wrong type, fails.
func render(t *testing.T, valuesFiles ...string) *manifests {
	t.Helper()
	return renderWith(t, nil, valuesFiles...)
}

// renderWith renders with set over the values files, as --set does.
func renderWith(t *testing.T, set map[string]any, valuesFiles ...string) *manifests {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	vals := values(t, set, valuesFiles...)
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: "wahook", Namespace: "wahook", IsInstall: true, Revision: 1}, caps)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	out, err := engine.Engine{Strict: true}.Render(ch, rv)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	m := &manifests{map[string]*appsv1.Deployment{}, map[string]*appsv1.StatefulSet{}, map[string]*corev1.Service{},
		map[string]*autoscalingv2.HorizontalPodAutoscaler{}, map[string]*policyv1.PodDisruptionBudget{},
		map[string]*monitoringv1.ServiceMonitor{}, map[string]*monitoringv1.PrometheusRule{}}
	names := make([]string, 0, len(out))
	for name := range out {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, helpers
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(out[name], -1) {
			if strings.TrimSpace(doc) == "" || isComment(doc) {
				continue
			}
			if err := m.decode([]byte(doc)); err != nil {
				t.Errorf("%s, document %d: %v\n%s", name, i, err, doc)
			}
		}
	}
	return m
}

// values reads the values files, later ones winning, with set over them.
func values(t *testing.T, set map[string]any, valuesFiles ...string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, f := range valuesFiles {
		v, err := common.ReadValuesFile(filepath.Join(chartDir, f))
		if err != nil {
			t.Fatal(err)
		}
		vals = util.MergeTables(v, vals)
	}
	if set != nil {
		// Through YAML: a deep copy, in the types values files have.
		b, err := yaml.Marshal(set)
		if err != nil {
			t.Fatal(err)
		}
		v, err := common.ReadValues(b)
		if err != nil {
			t.Fatal(err)
		}
		vals = util.MergeTables(v, vals)
	}
	return vals
}

func isComment(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func (m *manifests) decode(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	strict := func(obj interface{ GetName() string }, apiVersion string, into func(string)) error {
		if tm.APIVersion != apiVersion {
			return fmt.Errorf("%s in %s, want %s", tm.Kind, tm.APIVersion, apiVersion)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return err
		}
		if obj.GetName() == "" {
			return errors.New("no name")
		}
		into(obj.GetName())
		return nil
	}
	switch tm.Kind {
	case "Deployment":
		o := &appsv1.Deployment{}
		return strict(o, "apps/v1", func(n string) { m.deployments[n] = o })
	case "StatefulSet":
		o := &appsv1.StatefulSet{}
		return strict(o, "apps/v1", func(n string) { m.statefulSets[n] = o })
	case "Service":
		o := &corev1.Service{}
		return strict(o, "v1", func(n string) { m.services[n] = o })
	case "HorizontalPodAutoscaler":
		o := &autoscalingv2.HorizontalPodAutoscaler{}
		return strict(o, "autoscaling/v2", func(n string) { m.hpas[n] = o })
	case "PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		return strict(o, "policy/v1", func(n string) { m.pdbs[n] = o })
	case "ServiceMonitor":
		o := &monitoringv1.ServiceMonitor{}
		return strict(o, "monitoring.coreos.com/v1", func(n string) { m.monitors[n] = o })
	case "PrometheusRule":
		o := &monitoringv1.PrometheusRule{}
		return strict(o, "monitoring.coreos.com/v1", func(n string) { m.rules[n] = o })
	}
	return fmt.Errorf("unexpected kind %q", tm.Kind)
}

func TestChartDefault(t *testing.T) {
	m := render(t)
	want := []string{"Deployment", "StatefulSet", "Service", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule"}
	if got := m.kinds(); !slices.Equal(got, want) {
		t.Fatalf("kinds %v, want %v", got, want)
	}
	checkChart(t, m, 1)
	ingress := m.deployments["wahook-ingress"]
	env := ingress.Spec.Template.Spec.Containers[0].Env
	if e := findEnv(env, "WAHOOK_NATS_PASSWORD"); e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		e.ValueFrom.SecretKeyRef.Name != "wahook-nats" {
		t.Errorf("WAHOOK_NATS_PASSWORD %+v, want it from secret wahook-nats", e)
	}
	if e := findEnv(env, "WAHOOK_BROKER"); e == nil || e.Value != "nats" {
		t.Errorf("WAHOOK_BROKER %+v, want nats", e)
	}
	from := ingress.Spec.Template.Spec.Containers[0].EnvFrom
	if len(from) != 1 || from[0].SecretRef == nil || from[0].SecretRef.Name != "wahook-webhooks" {
		t.Errorf("ingress envFrom %+v, want the webhook secrets' Secret", from)
	}
	// Only /tmp by default: the Kafka TLS Secrets and extras are opt-in.
	for name, tpl := range m.podSpecs() {
		spec := tpl.Spec
		if len(spec.Volumes) != 1 || spec.Volumes[0].Name != "tmp" || spec.Volumes[0].EmptyDir == nil {
			t.Errorf("%s: volumes %+v, want /tmp's emptyDir only", name, spec.Volumes)
		}
		if vm := spec.Containers[0].VolumeMounts; len(vm) != 1 || vm[0].MountPath != "/tmp" {
			t.Errorf("%s: mounts %+v, want /tmp only", name, vm)
		}
		for _, e := range spec.Containers[0].Env {
			if strings.HasPrefix(e.Name, "WAHOOK_KAFKA_") {
				t.Errorf("%s: %s on NATS", name, e.Name)
			}
		}
	}
}

func TestChartKafka(t *testing.T) {
	m := render(t, "values-kafka.yaml")
	checkChart(t, m, 3)
	for _, spec := range m.podSpecs() {
		env := spec.Spec.Containers[0].Env
		if e := findEnv(env, "WAHOOK_BROKER"); e == nil || e.Value != "kafka" {
			t.Errorf("WAHOOK_BROKER %+v, want kafka", e)
		}
		if e := findEnv(env, "WAHOOK_KAFKA_SASL_PASSWORD"); e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
			e.ValueFrom.SecretKeyRef.Name != "wahook-kafka" {
			t.Errorf("WAHOOK_KAFKA_SASL_PASSWORD %+v, want it from secret wahook-kafka", e)
		}
		if e := findEnv(env, "WAHOOK_NATS_URL"); e != nil {
			t.Errorf("NATS settings on Kafka: %+v", e)
		}
		// The system's CAs: no CA or client certificate files.
		if e := findEnv(env, "WAHOOK_KAFKA_TLS"); e == nil || e.Value != "true" {
			t.Errorf("WAHOOK_KAFKA_TLS %+v, want true", e)
		}
		for _, e := range env {
			if strings.HasPrefix(e.Name, "WAHOOK_KAFKA_TLS_") {
				t.Errorf("%s without kafka.tls Secrets", e.Name)
			}
		}
		if len(spec.Spec.Volumes) != 1 {
			t.Errorf("volumes %+v, want /tmp's only", spec.Spec.Volumes)
		}
	}
}

// kafkaTLSValues: a private CA and a client certificate from Secrets, as
// for a Strimzi cluster with a KafkaUser's certificate, and the generic
// extras on each component.
var kafkaTLSValues = map[string]any{
	"kafka": map[string]any{"tls": map[string]any{
		"caSecret":     map[string]any{"name": "wahook-kafka-ca"},
		"clientSecret": map[string]any{"name": "wahook-kafka-user", "certKey": "user.crt", "keyKey": "user.key"},
	}},
	"ingress": map[string]any{
		"extraEnv": []any{map[string]any{"name": "WAHOOK_LOG_FORMAT", "value": "console"}},
	},
	"deriver": map[string]any{
		"extraEnv":          []any{map[string]any{"name": "WAHOOK_DERIVE_START_TIME", "value": "2026-01-01T00:00:00Z"}},
		"extraVolumes":      []any{map[string]any{"name": "profiles", "emptyDir": map[string]any{}}},
		"extraVolumeMounts": []any{map[string]any{"name": "profiles", "mountPath": "/profiles"}},
	},
}

// TestChartKafkaTLS: the CA and client certificate Secrets are mounted
// read-only into both workloads, and the WAHOOK_KAFKA_TLS_* variables name
// files those mounts hold.
func TestChartKafkaTLS(t *testing.T) {
	m := renderWith(t, kafkaTLSValues, "values-kafka.yaml")
	checkChart(t, m, 3)
	for name, tpl := range m.podSpecs() {
		spec := tpl.Spec
		c := spec.Containers[0]
		if e := findEnv(c.Env, "WAHOOK_KAFKA_TLS"); e == nil || e.Value != "true" {
			t.Errorf("%s: WAHOOK_KAFKA_TLS %+v, want true", name, e)
		}
		for _, f := range []struct{ env, secret, key string }{
			{"WAHOOK_KAFKA_TLS_CA", "wahook-kafka-ca", "ca.crt"},
			{"WAHOOK_KAFKA_TLS_CERT", "wahook-kafka-user", "user.crt"},
			{"WAHOOK_KAFKA_TLS_KEY", "wahook-kafka-user", "user.key"},
		} {
			e := findEnv(c.Env, f.env)
			if e == nil || e.Value == "" {
				t.Errorf("%s: no %s", name, f.env)
				continue
			}
			if secret, key := mountedSecretKey(spec, c, e.Value); secret != f.secret || key != f.key {
				t.Errorf("%s: %s=%s holds key %q of Secret %q, want %q of %q", name, f.env, e.Value, key, secret, f.key, f.secret)
			}
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.Name == "tmp" && vm.MountPath == "/tmp" }) {
			t.Errorf("%s: /tmp is no longer mounted: %+v", name, c.VolumeMounts)
		}
	}

	ingress := m.deployments["wahook-ingress"].Spec.Template.Spec
	deriver := m.statefulSets["wahook-deriver"].Spec.Template.Spec
	if e := findEnv(ingress.Containers[0].Env, "WAHOOK_LOG_FORMAT"); e == nil || e.Value != "console" {
		t.Errorf("ingress.extraEnv: WAHOOK_LOG_FORMAT %+v, want console", e)
	}
	if e := findEnv(deriver.Containers[0].Env, "WAHOOK_LOG_FORMAT"); e != nil {
		t.Errorf("ingress.extraEnv reached the deriver: %+v", e)
	}
	if e := findEnv(deriver.Containers[0].Env, "WAHOOK_DERIVE_START_TIME"); e == nil || e.Value != "2026-01-01T00:00:00Z" {
		t.Errorf("deriver.extraEnv: WAHOOK_DERIVE_START_TIME %+v", e)
	}
	if !slices.ContainsFunc(deriver.Volumes, func(v corev1.Volume) bool { return v.Name == "profiles" && v.EmptyDir != nil }) ||
		!slices.ContainsFunc(deriver.Containers[0].VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.Name == "profiles" && vm.MountPath == "/profiles" }) {
		t.Errorf("deriver.extraVolumes, extraVolumeMounts: volumes %+v, mounts %+v", deriver.Volumes, deriver.Containers[0].VolumeMounts)
	}
	if slices.ContainsFunc(ingress.Volumes, func(v corev1.Volume) bool { return v.Name == "profiles" }) {
		t.Errorf("deriver.extraVolumes reached the ingress")
	}
}

// mountedSecretKey returns the Secret and key whose file is at path in
// container c, through a read-only mount of a Secret volume.
func mountedSecretKey(spec corev1.PodSpec, c corev1.Container, path string) (secret, key string) {
	for _, vm := range c.VolumeMounts {
		dir, file := filepath.Split(path)
		if filepath.Clean(dir) != filepath.Clean(vm.MountPath) || !vm.ReadOnly || vm.SubPath != "" {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			for _, it := range v.Secret.Items {
				if it.Path == file {
					return v.Secret.SecretName, it.Key
				}
			}
		}
	}
	return "", ""
}

// TestChartKafkaTLSForms: TLS is on whenever a Secret is given; kafka.tls
// as a bool, the chart's earlier form that helm upgrade --reuse-values
// keeps, still turns TLS on with the system's CAs.
func TestChartKafkaTLSForms(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tls     any
		wantTLS string
		wantEnv []string
	}{
		{"bool", true, "true", nil},
		{"bool off", false, "false", nil},
		{"CA only", map[string]any{"enabled": false, "caSecret": map[string]any{"name": "ca"}}, "true", []string{"WAHOOK_KAFKA_TLS_CA"}},
		{"client only", map[string]any{"clientSecret": map[string]any{"name": "user"}}, "true", []string{"WAHOOK_KAFKA_TLS_CERT", "WAHOOK_KAFKA_TLS_KEY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := renderWith(t, map[string]any{"kafka": map[string]any{"tls": tc.tls}}, "values-kafka.yaml")
			checkChart(t, m, 3)
			for name, tpl := range m.podSpecs() {
				c := tpl.Spec.Containers[0]
				if e := findEnv(c.Env, "WAHOOK_KAFKA_TLS"); e == nil || e.Value != tc.wantTLS {
					t.Errorf("%s: WAHOOK_KAFKA_TLS %+v, want %s", name, e, tc.wantTLS)
				}
				var files []string
				for _, e := range c.Env {
					if strings.HasPrefix(e.Name, "WAHOOK_KAFKA_TLS_") {
						files = append(files, e.Name)
						if s, k := mountedSecretKey(tpl.Spec, c, e.Value); s == "" || k == "" {
							t.Errorf("%s: %s=%s is no mounted Secret key", name, e.Name, e.Value)
						}
					}
				}
				if !slices.Equal(files, tc.wantEnv) {
					t.Errorf("%s: TLS files %v, want %v", name, files, tc.wantEnv)
				}
				if got, want := len(tpl.Spec.Volumes), 1+min(len(tc.wantEnv), 1); got != want {
					t.Errorf("%s: %d volumes, want %d: %+v", name, got, want, tpl.Spec.Volumes)
				}
			}
		})
	}
}

// TestChartLint runs Helm's own chart linter with both values files, and
// with the Kafka TLS Secrets and extras set.
func TestChartLint(t *testing.T) {
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  map[string]any
		file string
	}{
		{"values.yaml", nil, ""},
		{"values-kafka.yaml", nil, "values-kafka.yaml"},
		{"Kafka TLS Secrets", kafkaTLSValues, "values-kafka.yaml"},
	} {
		var files []string
		if tc.file != "" {
			files = append(files, tc.file)
		}
		res := lint.RunAll(chartDir, values(t, tc.set, files...), "wahook", lint.WithKubeVersion(kv))
		for _, msg := range res.Messages {
			if msg.Severity >= support.WarningSev {
				t.Errorf("lint %s: %v", tc.name, msg)
			}
		}
	}
}

// TestChartRules: the chart's rules are the ones docker-compose's
// Prometheus loads (Helm reads only files inside the chart: make
// helm-rules copies them).
func TestChartRules(t *testing.T) {
	src, err := os.ReadFile(sourceRules)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s is not written yet", sourceRules)
	}
	if err != nil {
		t.Fatal(err)
	}
	cp, err := os.ReadFile(chartRules)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, cp) {
		t.Errorf("%s differs from %s: run make helm-rules", chartRules, sourceRules)
	}
}

func (m *manifests) podSpecs() map[string]*corev1.PodTemplateSpec {
	specs := map[string]*corev1.PodTemplateSpec{}
	for n, d := range m.deployments {
		specs[n] = &d.Spec.Template
	}
	for n, s := range m.statefulSets {
		specs[n] = &s.Spec.Template
	}
	return specs
}

// checkChart checks what holds for every values file.
func checkChart(t *testing.T, m *manifests, partitions int32) {
	t.Helper()
	ingress, deriver := m.deployments["wahook-ingress"], m.statefulSets["wahook-deriver"]
	if ingress == nil || deriver == nil {
		t.Fatalf("deployments %v, stateful sets %v; want wahook-ingress and wahook-deriver", keys(m.deployments), keys(m.statefulSets))
	}
	settings, err := os.ReadFile(filepath.Join(root, "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, tpl := range m.podSpecs() {
		spec := tpl.Spec
		if psc := spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("%s: pod may run as root", name)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: mounts a service account token it does not use", name)
		}
		if len(spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", name, len(spec.Containers))
		}
		c := spec.Containers[0]
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: security context %+v, want a read-only root, no privilege escalation, all capabilities dropped", name, sc)
		}
		probe := func(kind string, p *corev1.Probe, path string) {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.StrVal != "admin" {
				t.Errorf("%s: %s probe %+v, want GET %s on the admin port", name, kind, p, path)
			}
		}
		probe("liveness", c.LivenessProbe, "/healthz")
		probe("readiness", c.ReadinessProbe, "/readyz")
		probe("startup", c.StartupProbe, "/readyz")
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "admin" && p.ContainerPort == 9090 }) {
			t.Errorf("%s: no admin port 9090: %+v", name, c.Ports)
		}
		for _, e := range c.Env {
			if strings.Contains(e.Name, "PASSWORD") && e.Value != "" {
				t.Errorf("%s: %s in clear, want it from a Secret", name, e.Name)
			}
			// Every variable is one the services read.
			if !bytes.Contains(settings, []byte(e.Name)) {
				t.Errorf("%s: %s is no documented setting (docs/configuration.md)", name, e.Name)
			}
		}
	}

	// The deriver: one pod per partition, its ordinal the partition.
	if deriver.Spec.Replicas == nil || *deriver.Spec.Replicas != partitions {
		t.Errorf("deriver replicas %v, want %d", deriver.Spec.Replicas, partitions)
	}
	denv := deriver.Spec.Template.Spec.Containers[0].Env
	if e := findEnv(denv, "WAHOOK_DERIVE_PARTITIONS"); e == nil || e.Value != fmt.Sprint(partitions) {
		t.Errorf("WAHOOK_DERIVE_PARTITIONS %+v, want %d", e, partitions)
	}
	if e := findEnv(denv, "WAHOOK_DERIVE_PARTITION"); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil ||
		e.ValueFrom.FieldRef.FieldPath != "metadata.labels['apps.kubernetes.io/pod-index']" {
		t.Errorf("WAHOOK_DERIVE_PARTITION %+v, want the pod-index label", e)
	}
	if deriver.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("deriver pod management %q, want Parallel", deriver.Spec.PodManagementPolicy)
	}
	if svc := m.services[deriver.Spec.ServiceName]; svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("deriver service %q: want a headless Service", deriver.Spec.ServiceName)
	}

	// Selectors select their pods, and only those.
	selects := func(what string, sel *metav1.LabelSelector, pods *corev1.PodTemplateSpec, other *corev1.PodTemplateSpec) {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() || !s.Matches(labels.Set(pods.Labels)) || s.Matches(labels.Set(other.Labels)) {
			t.Errorf("%s: selector %v does not select its pods alone (%v)", what, sel, err)
		}
	}
	selects("ingress deployment", ingress.Spec.Selector, &ingress.Spec.Template, &deriver.Spec.Template)
	selects("deriver stateful set", deriver.Spec.Selector, &deriver.Spec.Template, &ingress.Spec.Template)
	for name, pdb := range m.pdbs {
		selects("pdb "+name, pdb.Spec.Selector, &ingress.Spec.Template, &deriver.Spec.Template)
	}
	for name, hpa := range m.hpas {
		if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != ingress.Name || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
			t.Errorf("hpa %s: %+v, want the ingress, at least 2 replicas", name, hpa.Spec)
		}
	}
	for name, svc := range m.services {
		s := labels.SelectorFromSet(svc.Spec.Selector)
		var n int
		for _, tpl := range m.podSpecs() {
			if s.Matches(labels.Set(tpl.Labels)) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("service %s selects %d workloads, want 1", name, n)
		}
	}

	// Prometheus Operator: every service's admin port is scraped, with the
	// job names of docker-compose's Prometheus; the rules are the chart's copy.
	if len(m.monitors) != 1 {
		t.Fatalf("%d service monitors, want 1", len(m.monitors))
	}
	for _, sm := range m.monitors {
		s, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		var jobs []string
		for _, svc := range m.services {
			if s.Matches(labels.Set(svc.Labels)) {
				jobs = append(jobs, svc.Labels[sm.Spec.JobLabel])
			}
		}
		sort.Strings(jobs)
		if !slices.Equal(jobs, []string{"wahook-deriver", "wahook-ingress"}) {
			t.Errorf("service monitor scrapes jobs %v, want wahook-deriver and wahook-ingress", jobs)
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "admin" {
			t.Errorf("service monitor endpoints %+v, want the admin port", sm.Spec.Endpoints)
		}
	}
	var want monitoringv1.PrometheusRuleSpec
	b, err := os.ReadFile(chartRules)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &want); err != nil {
		t.Fatalf("%s: %v", chartRules, err)
	}
	if len(want.Groups) == 0 {
		t.Fatalf("%s has no groups", chartRules)
	}
	for name, r := range m.rules {
		got, _ := yaml.Marshal(r.Spec)
		exp, _ := yaml.Marshal(want)
		if !bytes.Equal(got, exp) {
			t.Errorf("prometheus rule %s differs from %s", name, chartRules)
		}
	}
}

func findEnv(env []corev1.EnvVar, name string) *corev1.EnvVar {
	for i := range env {
		if env[i].Name == name {
			return &env[i]
		}
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
