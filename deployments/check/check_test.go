package check

import (
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var update = flag.Bool("update", false, "rewrite the list of metrics used")

const (
	rulesFile     = "../prometheus/rules.yml"
	dashboardFile = "../grafana/wahook.json"
	// usedFile lists every metric the rules and the dashboard use, one a
	// line; services/ingress's TestDeploymentMetricsExist checks that each
	// is on a running service's /metrics.
	usedFile = "../prometheus/metrics-used.txt"
)

// derivedStreams are wahook's derived streams (pkg/derive.Streams): the
// dashboard has a row for each.
var derivedStreams = []string{"label-changed", "chat-created", "call", "group-notification"}

func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// metricNames adds the metric names expr selects to names.
func metricNames(t *testing.T, where, expr string, names map[string]bool) {
	t.Helper()
	e, err := newParser().ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v\n%s", where, err, expr)
		return
	}
	found := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			t.Errorf("%s: a selector without a metric name: %s", where, vs)
			return nil
		}
		names[name], found = true, true
		return nil
	})
	if !found {
		t.Errorf("%s: selects no metric: %s", where, expr)
	}
}

// TestRules parses the rules as Prometheus loads them (unknown fields
// refused, every expression and annotation template checked), and checks
// that every alert says what it means and what to do.
func TestRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, newParser(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil || len(groups.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	names := map[string]bool{}
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule that is not an alert (%s)", g.Name, r.Record)
				continue
			}
			alerts++
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s has no %s", r.Alert, a)
				}
			}
			if r.Labels["severity"] == "" {
				t.Errorf("alert %s has no severity", r.Alert)
			}
			metricNames(t, "alert "+r.Alert, r.Expr, names)
		}
	}
	for _, want := range []string{"wahook_ingress_deliveries_total", "wahook_consumer_lag_events",
		"wahook_consumer_oldest_pending_age_seconds", "wahook_consumer_stalled_seconds", "wahook_nats_stream_max_bytes"} {
		if !names[want] {
			t.Errorf("no alert on %s", want)
		}
	}
	t.Logf("%d alerts on %d metrics", alerts, len(names))
}

// dashboard is what the test reads of a Grafana dashboard.
type dashboard struct {
	Panels []panel `json:"panels"`
}

type panel struct {
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// grafanaVars stand for the dashboard's variables in its queries, as
// Grafana replaces them before sending a query.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", ".*")

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// TestDashboard parses every query of the dashboard and checks it has a
// row per derived stream, the ingress and storage.
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	var rows []string
	names := map[string]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				rows = append(rows, p.Title)
			}
			for i, tg := range p.Targets {
				metricNames(t, "panel "+p.Title+" query "+string(rune('A'+i)), grafanaVars.Replace(tg.Expr), names)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, s := range derivedStreams {
		if !slices.Contains(rows, "Stream "+s) {
			t.Errorf("no row for stream %s in %q", s, rows)
		}
	}
	for _, r := range []string{"Ingress", "Storage and state"} {
		if !slices.Contains(rows, r) {
			t.Errorf("no row %s in %q", r, rows)
		}
	}
}

// TestMetricsUsedListed: the list services/ingress checks against running
// services is exactly the metrics the rules and the dashboard use; -update
// rewrites it.
func TestMetricsUsedListed(t *testing.T) {
	names := map[string]bool{}
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, newParser(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			metricNames(t, "rule "+r.Alert+r.Record, r.Expr, names)
		}
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				metricNames(t, "panel "+p.Title, grafanaVars.Replace(tg.Expr), names)
			}
			walk(p.Panels)
		}
	}
	walk(readDashboard(t).Panels)
	want := strings.Join(slices.Sorted(maps.Keys(names)), "\n") + "\n"
	if *update {
		if err := os.WriteFile(usedFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(usedFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is not the metrics the rules and the dashboard use; run `make test-deployments UPDATE=1`\ngot:\n%s\nwant:\n%s",
			filepath.Base(usedFile), got, want)
	}
}
