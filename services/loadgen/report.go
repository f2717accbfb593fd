package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// record is one measured row of a load test: hit writes it, drain adds the
// end-to-end time of a pipeline row, report reads them all.
type record struct {
	Row     string        `json:"row"`
	Body    string        `json:"body"`
	Broker  string        `json:"broker,omitempty"`
	Conns   int           `json:"conns"`
	OK      int64         `json:"ok"`
	Failed  int64         `json:"failed"`
	Start   time.Time     `json:"start"`
	Elapsed time.Duration `json:"elapsed"`
	P50     time.Duration `json:"p50"`
	P99     time.Duration `json:"p99"`
	Max     time.Duration `json:"max"`
	// EndToEnd runs from Start until the consumers had processed every
	// raw event; Lag is what they had left when the load stopped. Zero
	// for rows without consumers.
	EndToEnd time.Duration `json:"end_to_end,omitempty"`
	Lag      int64         `json:"lag,omitempty"`
	// CPU is the CPU time each watched process (the broker, the target)
	// used over the load and, for a pipeline row, until it was drained.
	CPU map[string]time.Duration `json:"cpu,omitempty"`
	// RSS is each watched process's peak resident memory, in bytes, when
	// the row ended.
	RSS map[string]int64 `json:"rss,omitempty"`
	// Instances is the number of derivers of a scale row.
	Instances int `json:"instances,omitempty"`
}

// rate is deliveries per second: accepted over the load's duration, or
// over the time until the consumers were done with them.
func (r record) rate() float64 {
	d := r.Elapsed
	if r.EndToEnd > 0 {
		d = r.EndToEnd
	}
	return float64(r.OK) / d.Seconds()
}

func appendRecord(path string, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("results: %w", err)
	}
	return f.Close()
}

func readRecords(path string) ([]record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	var rs []record
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("results %s line %d: %w", path, len(rs)+1, err)
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}

// updateLast rewrites the file's last record with f applied to it.
func updateLast(path string, f func(*record)) (record, error) {
	rs, err := readRecords(path)
	if err != nil {
		return record{}, err
	}
	if len(rs) == 0 {
		return record{}, fmt.Errorf("results %s: no record", path)
	}
	f(&rs[len(rs)-1])
	var buf bytes.Buffer
	for _, r := range rs {
		b, err := json.Marshal(r)
		if err != nil {
			return record{}, err
		}
		buf.Write(append(b, '\n'))
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return record{}, fmt.Errorf("results: %w", err)
	}
	return rs[len(rs)-1], nil
}

// The rows a load test measures; yardstick is the one every row is
// compared with.
const (
	rowReference        = "reference"
	rowReferenceHeaders = "reference+headers"
	rowIngress          = "ingress"
	rowPipeline         = "pipeline"
	rowScale            = "scale"
	yardstick           = rowReferenceHeaders
)

// report prints a run's rows with their ratio to the yardstick of the same
// body and, for rows on Kafka, to the same row on NATS.
func report(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	results := fs.String("results", "", "the file hit and drain wrote")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *results == "" {
		return errors.New("report: -results is required")
	}
	rs, err := readRecords(*results)
	if err != nil {
		return err
	}
	var table, scale []record
	for _, r := range rs {
		if r.Row == rowScale {
			scale = append(scale, r)
		} else {
			table = append(table, r)
		}
	}
	if len(table) > 0 {
		writeReport(out, table)
		writeCPU(out, table)
	}
	writeScale(out, scale)
	writeRSS(out, rs)
	return nil
}

func writeReport(out io.Writer, rs []record) {
	byKey := byRow(rs)
	fmt.Fprintf(out, "\n# deliveries/s and ratios, each to %s of the same body (goals: ingress >= 0.85, pipeline >= 0.50, p99 < 20ms; Kafka >= 0.50 of NATS)\n", yardstick)
	fmt.Fprintf(out, "%-12s %-18s %-6s %5s %13s %7s %10s %9s  %s\n",
		"body", "row", "broker", "conns", "deliveries/s", "ratio", "p99", "kafka/nats", "end to end")
	for _, body := range bodyOrder(rs) {
		ref, haveRef := byKey[rowKey{yardstick, body, "nats"}]
		for _, r := range rs {
			if r.Body != body {
				continue
			}
			ratio, vsNATS, e2e := "-", "", ""
			if haveRef {
				ratio = fmt.Sprintf("%.2f", r.rate()/ref.rate())
			}
			if b := brokerOf(r); b != "nats" {
				if n, ok := byKey[rowKey{r.Row, body, "nats"}]; ok {
					vsNATS = fmt.Sprintf("%.2f", r.rate()/n.rate())
				}
			}
			if r.EndToEnd > 0 {
				e2e = fmt.Sprintf("%d in %s (load %s, lag %d at its end)", r.OK, r.EndToEnd.Round(time.Millisecond),
					r.Elapsed.Round(time.Millisecond), r.Lag)
			}
			if r.Failed > 0 {
				e2e = strings.TrimSpace(fmt.Sprintf("%s %d FAILED", e2e, r.Failed))
			}
			line := fmt.Sprintf("%-12s %-18s %-6s %5d %13.0f %7s %10s %9s  %s",
				body, r.Row, brokerOf(r), r.Conns, r.rate(), ratio, r.P99.Round(10*time.Microsecond), vsNATS, e2e)
			fmt.Fprintln(out, strings.TrimRight(line, " "))
		}
	}
}

// writeCPU prints, for the rows whose processes were watched, the CPU time
// each used per accepted delivery, the load generator's included: where a
// row's time goes, broker, wahook or load, and what a ratio below its goal
// is made of. On cores that all three keep busy a row's rate is about the
// inverse of its total, so it also prints, for each pipeline row, the ratio
// a pipeline whose consumers cost nothing in the process would reach: the
// broker's work as measured (the stores and deliveries the derivations
// need), the ingress's and the load's as in the ingress row.
func writeCPU(out io.Writer, rs []record) {
	byKey := byRow(rs)
	header := false
	var bounds []string
	for _, r := range rs {
		c := cpuPerDelivery(r.CPU, r.OK)
		if c == "" {
			continue
		}
		if !header {
			fmt.Fprintf(out, "\n# CPU time per accepted delivery, µs, and its total\n")
			fmt.Fprintf(out, "%-12s %-18s %-6s  %s\n", "body", "row", "broker", "cpu")
			header = true
		}
		fmt.Fprintf(out, "%-12s %-18s %-6s  %s\n", r.Body, r.Row, brokerOf(r), c)
		if r.Row != rowPipeline {
			continue
		}
		ref, ok1 := byKey[rowKey{yardstick, r.Body, "nats"}]
		ing, ok2 := byKey[rowKey{rowIngress, r.Body, brokerOf(r)}]
		if !ok1 || !ok2 || r.OK == 0 || ref.OK == 0 || ing.OK == 0 {
			continue
		}
		perDelivery := func(r record, name string) (float64, bool) {
			d, ok := r.CPU[name]
			return float64(d.Microseconds()) / float64(r.OK), ok
		}
		broker, okB := perDelivery(r, "broker")
		target, okT := perDelivery(ing, "target")
		load, okL := perDelivery(ing, "load")
		refTotal := 0.0
		for name := range ref.CPU {
			v, _ := perDelivery(ref, name)
			refTotal += v
		}
		if !okB || !okT || !okL || len(ref.CPU) < 3 || broker+target+load == 0 {
			continue
		}
		bounds = append(bounds, fmt.Sprintf("%-12s %-18s %-6s  %.2f (%.0f / (broker %.0f + ingress %.0f + load %.0f))",
			r.Body, r.Row, brokerOf(r), refTotal/(broker+target+load), refTotal, broker, target, load))
	}
	if len(bounds) > 0 {
		fmt.Fprintf(out, "\n# the ratio a pipeline would reach if its consumers cost no CPU in the process: %s's total over\n", yardstick)
		fmt.Fprintf(out, "# the pipeline's broker CPU plus the ingress row's target and load CPU (an estimate: rates go as the inverse of the total on busy cores)\n")
		for _, b := range bounds {
			fmt.Fprintln(out, b)
		}
	}
}

// rowKey names a row of the report: its row, body and broker.
type rowKey struct{ row, body, broker string }

// byRow indexes rs by row, body and broker.
func byRow(rs []record) map[rowKey]record {
	m := make(map[rowKey]record, len(rs))
	for _, r := range rs {
		m[rowKey{r.Row, r.Body, brokerOf(r)}] = r
	}
	return m
}

func brokerOf(r record) string {
	if r.Broker == "" {
		return "nats"
	}
	return r.Broker
}

// bodyOrder lists the bodies of rs in the order they first appear.
func bodyOrder(rs []record) []string {
	var order []string
	seen := map[string]bool{}
	for _, r := range rs {
		if !seen[r.Body] {
			seen[r.Body] = true
			order = append(order, r.Body)
		}
	}
	return order
}

// writeScale prints the scale rows: raw events the derivers finished per
// second with each number of instances, and how that compares with one.
func writeScale(out io.Writer, rs []record) {
	if len(rs) == 0 {
		return
	}
	type key struct{ body, broker string }
	one := map[key]record{}
	for _, r := range rs {
		if r.Instances == 1 {
			one[key{r.Body, brokerOf(r)}] = r
		}
	}
	fmt.Fprintf(out, "\n# derivation: raw events the derivers finished per second, from a full raw stream, by instances\n")
	fmt.Fprintf(out, "%-12s %-6s %9s %10s %9s %12s %8s  %s\n", "body", "broker", "instances", "raw events", "time", "raw events/s", "x one", "cpu µs per raw event")
	for _, r := range rs {
		x := "-"
		if o, ok := one[key{r.Body, brokerOf(r)}]; ok {
			x = fmt.Sprintf("%.2f", r.rate()/o.rate())
		}
		line := fmt.Sprintf("%-12s %-6s %9d %10d %9s %12.0f %8s  %s", r.Body, brokerOf(r), r.Instances, r.OK,
			r.EndToEnd.Round(10*time.Millisecond), r.rate(), x, cpuPerDelivery(sumDerivers(r.CPU), r.OK))
		fmt.Fprintln(out, strings.TrimRight(line, " "))
	}
}

// sumDerivers adds the CPU of the processes named deriver* into one.
func sumDerivers(cpu map[string]time.Duration) map[string]time.Duration {
	m := map[string]time.Duration{}
	for n, d := range cpu {
		if strings.HasPrefix(n, "deriver") {
			n = "derivers"
		}
		m[n] += d
	}
	return m
}

// writeRSS prints the peak resident memory of every watched process of
// the rows that recorded it.
func writeRSS(out io.Writer, rs []record) {
	header := false
	for _, r := range rs {
		if len(r.RSS) == 0 {
			continue
		}
		if !header {
			fmt.Fprintf(out, "\n# peak resident memory (VmHWM) of each process when the row ended, MiB\n")
			fmt.Fprintf(out, "%-12s %-18s %-6s  %s\n", "body", "row", "broker", "peak rss")
			header = true
		}
		names := make([]string, 0, len(r.RSS))
		for n := range r.RSS {
			names = append(names, n)
		}
		sort.Strings(names)
		var parts []string
		for _, n := range names {
			parts = append(parts, fmt.Sprintf("%s %.0f", n, float64(r.RSS[n])/(1<<20)))
		}
		row := r.Row
		if r.Instances > 0 {
			row = fmt.Sprintf("%s x%d", r.Row, r.Instances)
		}
		fmt.Fprintf(out, "%-12s %-18s %-6s  %s\n", r.Body, row, brokerOf(r), strings.Join(parts, ", "))
	}
}
