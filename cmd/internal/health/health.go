// Package health is what the `status` commands of signet-server and
// signet-bridge share: reading Prometheus text metrics and reporting in
// the manner of a Nagios/Icinga plugin (a summary line, details, exit
// status 0 OK, 1 WARNING, 2 CRITICAL).
package health

import (
	"errors"
	"fmt"
	"io"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Exit statuses.
const (
	OK       = 0
	Warning  = 1
	Critical = 2
)

var names = [...]string{OK: "OK", Warning: "WARNING", Critical: "CRITICAL"}

// Report is a status check's outcome.
type Report struct {
	Program string
	Code    int
	Summary string
	Details []string
}

func (r *Report) set(code int, format string, args []any) *Report {
	r.Code, r.Summary = code, fmt.Sprintf(format, args...)
	return r
}

func (r *Report) OK(format string, args ...any) *Report      { return r.set(OK, format, args) }
func (r *Report) Warning(format string, args ...any) *Report { return r.set(Warning, format, args) }
func (r *Report) Critical(format string, args ...any) *Report {
	return r.set(Critical, format, args)
}

// Detail adds a line printed after the summary.
func (r *Report) Detail(format string, args ...any) {
	r.Details = append(r.Details, fmt.Sprintf(format, args...))
}

// Print writes "STATE: summary" and the details.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n", names[r.Code], r.Summary)
	for _, d := range r.Details {
		fmt.Fprintln(w, d)
	}
}

// Err is nil for OK, else an error whose ExitCode is the report's.
func (r *Report) Err() error {
	if r.Code == OK {
		return nil
	}
	return &exitError{code: r.Code, msg: names[r.Code]}
}

type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return "status " + e.msg }
func (e *exitError) ExitCode() int { return e.code }

// ExitCode is the exit status for a command's error: the status check's
// own, or 1.
func ExitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}

// Metrics are parsed Prometheus text metrics.
type Metrics map[string]*dto.MetricFamily

// Parse reads the Prometheus text format.
func Parse(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(r)
	return Metrics(m), err
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// ByLabel sums a metric's samples by the value of one label.
func (ms Metrics) ByLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	if f := ms[name]; f != nil {
		for _, m := range f.Metric {
			key := ""
			for _, l := range m.Label {
				if l.GetName() == label {
					key = l.GetValue()
				}
			}
			out[key] += value(m)
		}
	}
	return out
}

// Sum adds up a metric's samples; Has reports whether it is present.
func (ms Metrics) Sum(name string) float64 {
	s := 0.0
	if f := ms[name]; f != nil {
		for _, m := range f.Metric {
			s += value(m)
		}
	}
	return s
}

func (ms Metrics) Has(name string) bool { return ms[name] != nil }

// Keys returns m's keys in order.
func Keys(m map[string]float64) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
