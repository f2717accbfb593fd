package test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// root is the repository's root, seen from this module.
const root = "../.."

// otherBranchFiles are mounted by the monitoring profile but written with
// the metrics and alerts: checked when present.
var otherBranchFiles = []string{"deployments/prometheus/rules.yml", "deployments/grafana/wahook.json"}

// composeEnv sets every secret docker-compose.yml requires.
func composeEnv() map[string]string {
	return map[string]string{
		"WAHOOK_AUTH_WHAPI_TOKENS":        "w",
		"WAHOOK_AUTH_ZAPI_TOKENS":         "z",
		"WAHOOK_AUTH_WAHA_HMAC_KEYS":      "h",
		"WAHOOK_NATS_PASSWORD":            "n",
		"WAHOOK_NATS_SUBSCRIBER_PASSWORD": "s",
		"WAHOOK_KAFKA_SASL_PASSWORD":      "k",
		"WAHOOK_GRAFANA_ADMIN_PASSWORD":   "g",
	}
}

// loadCompose loads docker-compose.yml with the Compose Specification's
// loader, as `docker compose --profile ...` does: schema validation,
// interpolation, merge keys, paths resolved against the root.
func loadCompose(t *testing.T, env map[string]string, profiles ...string) (*types.Project, error) {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, "docker-compose.yml")}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName("wahook", true)
		o.Profiles = profiles
		o.ResolvePaths = true
	})
}

// pinned is an image reference with an exact version (x.y.z), neither
// latest nor a moving major or minor tag.
var pinned = regexp.MustCompile(`^[a-z0-9./-]+:v?\d+\.\d+\.\d+(-[a-z0-9]+)?$`)

// wahookHealth is the wahook services' health check: their own binary,
// at the path deployments/docker/Dockerfile installs it.
var wahookHealth = []string{"CMD", "/usr/local/bin/service", "-healthcheck"}

func TestCompose(t *testing.T) {
	cases := []struct {
		profiles []string
		services []string
	}{
		{nil, []string{"deriver", "ingress", "nats"}},
		{[]string{"kafka"}, []string{"deriver", "deriver-kafka", "ingress", "ingress-kafka", "kafka", "nats"}},
		{[]string{"monitoring"}, []string{"deriver", "grafana", "ingress", "nats", "prometheus"}},
		{[]string{"kafka", "monitoring"}, []string{"deriver", "deriver-kafka", "grafana", "ingress", "ingress-kafka", "kafka", "nats", "prometheus"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(append([]string{"default"}, tc.profiles...), "+"), func(t *testing.T) {
			p, err := loadCompose(t, composeEnv(), tc.profiles...)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if got := p.ServiceNames(); !slices.Equal(sorted(got), tc.services) {
				t.Fatalf("services %v, want %v", sorted(got), tc.services)
			}
			for name, s := range p.Services {
				checkService(t, name, s)
			}
		})
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func checkService(t *testing.T, name string, s types.ServiceConfig) {
	t.Helper()
	if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
		t.Errorf("%s: no health check", name)
	}
	if s.Restart != types.RestartPolicyUnlessStopped && s.Restart != types.RestartPolicyAlways {
		t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
	}
	if s.Build != nil {
		// Built from this repository: the health check is the binary's own.
		if s.HealthCheck != nil && !slices.Equal([]string(s.HealthCheck.Test), wahookHealth) {
			t.Errorf("%s: health check %v, want %v", name, s.HealthCheck.Test, wahookHealth)
		}
	} else if !pinned.MatchString(s.Image) {
		t.Errorf("%s: image %q is not pinned to an exact version", name, s.Image)
	}
	for _, port := range s.Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("%s: port %s:%d published on %q, want 127.0.0.1 only", name, port.Published, port.Target, port.HostIP)
		}
	}
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		rel, err := filepath.Rel(mustAbs(t, root), v.Source)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(v.Source); err != nil {
			if errors.Is(err, os.ErrNotExist) && slices.Contains(otherBranchFiles, rel) {
				t.Logf("%s: %s is not written yet", name, rel)
				continue
			}
			t.Errorf("%s: mounted file: %v", name, err)
		}
		if !v.ReadOnly {
			t.Errorf("%s: %s mounted writable", name, rel)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestComposeVersions: NATS runs the server version the Go code embeds and
// is tested with, the wahook health check runs the binary where the
// Dockerfile puts it, and KRaft has a cluster id.
func TestComposeVersions(t *testing.T) {
	p, err := loadCompose(t, composeEnv(), "kafka")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github.com/nats-io/nats-server/v2 v(\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod names no nats-server")
	}
	if want := "nats:" + string(m[1]) + "-alpine"; p.Services["nats"].Image != want {
		t.Errorf("nats image %q, want %q (go.mod)", p.Services["nats"].Image, want)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "deployments/docker/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), `ENTRYPOINT ["`+wahookHealth[1]+`"]`) {
		t.Errorf("the Dockerfile's entry point is not %s", wahookHealth[1])
	}
	if id := p.Services["kafka"].Environment["CLUSTER_ID"]; id == nil || len(*id) != 22 {
		t.Errorf("kafka CLUSTER_ID %v, want a base64 UUID", id)
	}
}

// TestComposeRequiresSecrets: without a secret compose refuses to start.
func TestComposeRequiresSecrets(t *testing.T) {
	for _, name := range []string{"WAHOOK_AUTH_WHAPI_TOKENS", "WAHOOK_NATS_PASSWORD", "WAHOOK_NATS_SUBSCRIBER_PASSWORD",
		"WAHOOK_KAFKA_SASL_PASSWORD", "WAHOOK_GRAFANA_ADMIN_PASSWORD"} {
		env := composeEnv()
		delete(env, name)
		if _, err := loadCompose(t, env); err == nil || !strings.Contains(err.Error(), "set the") {
			t.Errorf("without %s: %v, want a refusal", name, err)
		}
	}
}

// TestEnvExample: .env.example lists every variable docker-compose.yml
// reads, and only those.
func TestEnvExample(t *testing.T) {
	compose, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)`).FindAllSubmatch(compose, -1) {
		read[string(m[1])] = true
	}
	example, err := os.ReadFile(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(example), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			listed[k] = true
		}
	}
	for k := range read {
		if !listed[k] {
			t.Errorf(".env.example lacks %s", k)
		}
	}
	for k := range listed {
		if !read[k] {
			t.Errorf(".env.example lists %s, which docker-compose.yml does not read", k)
		}
	}
}

// TestMonitoringProvisioning: Prometheus loads the rules where compose
// mounts them and scrapes every wahook service's admin port; Grafana's
// Prometheus is compose's and its dashboards are where compose mounts
// wahook.json.
func TestMonitoringProvisioning(t *testing.T) {
	p, err := loadCompose(t, composeEnv(), "kafka", "monitoring")
	if err != nil {
		t.Fatal(err)
	}
	target := func(service, file string) string {
		for _, v := range p.Services[service].Volumes {
			if strings.HasSuffix(v.Source, file) {
				return v.Target
			}
		}
		t.Fatalf("%s does not mount %s", service, file)
		return ""
	}
	var prom struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	readYAML(t, "deployments/prometheus/prometheus.yml", &prom)
	if !slices.Equal(prom.RuleFiles, []string{target("prometheus", "deployments/prometheus/rules.yml")}) {
		t.Errorf("rule files %v, want the mounted rules.yml", prom.RuleFiles)
	}
	var scraped []string
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			scraped = append(scraped, st.Targets...)
		}
	}
	for name, s := range p.Services {
		if s.Build != nil && !slices.Contains(scraped, name+":9090") {
			t.Errorf("Prometheus does not scrape %s:9090", name)
		}
	}
	var ds struct {
		Datasources []struct {
			URL string `json:"url"`
		} `json:"datasources"`
	}
	readYAML(t, "deployments/grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("Grafana data sources %+v, want compose's Prometheus", ds.Datasources)
	}
	var dash struct {
		Providers []struct {
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	readYAML(t, "deployments/grafana/provisioning/dashboards/wahook.yml", &dash)
	want := filepath.Dir(target("grafana", "deployments/grafana/wahook.json"))
	if len(dash.Providers) != 1 || dash.Providers[0].Options.Path != want {
		t.Errorf("Grafana dashboard providers %+v, want one reading %s", dash.Providers, want)
	}
}

// readYAML decodes a repository file strictly into v.
func readYAML(t *testing.T, rel string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}
