package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// figure is one reported number: a value per run, summarized as the median
// with its min-max spread.
type figure struct {
	scenario string
	name     string
	unit     string // "ms", "/s", "KiB", "x", "s"
	vals     []float64
	anchor   *figure // measured in the same runs, shown beside it
	target   string
	ok       func(median float64) bool
	limit    string // what limits it, written when the target is missed
}

func (f *figure) add(v float64) { f.vals = append(f.vals, v) }

func (f *figure) median() float64 {
	if len(f.vals) == 0 {
		return math.NaN()
	}
	s := slices.Clone(f.vals)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (f *figure) summary() (med, spread string) {
	if len(f.vals) == 0 {
		return "n/a", ""
	}
	med = format(f.median(), f.unit)
	if len(f.vals) > 1 {
		spread = format(slices.Min(f.vals), f.unit) + " – " + format(slices.Max(f.vals), f.unit)
	}
	if len(f.vals) == 1 {
		return med, "(1 run)"
	}
	return med, spread
}

// status is "met", "MISSED" or "" (no target).
func (f *figure) status() string {
	if f.ok == nil || len(f.vals) == 0 {
		return ""
	}
	if f.ok(f.median()) {
		return "met"
	}
	return "MISSED"
}

func format(v float64, unit string) string {
	switch unit {
	case "ms":
		if v < 10 {
			return fmt.Sprintf("%.2f ms", v)
		}
		return fmt.Sprintf("%.1f ms", v)
	case "/s":
		return thousands(v) + "/s"
	case "MiB":
		return fmt.Sprintf("%.0f MiB", v)
	case "KiB":
		return fmt.Sprintf("%.1f KiB", v)
	case "x":
		return fmt.Sprintf("%.2f", v)
	case "s":
		return fmt.Sprintf("%.2f s", v)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// pct returns the p-th percentile (0-100) of ds in milliseconds.
func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return ms(s[i])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func atMost(limit float64) func(float64) bool  { return func(v float64) bool { return v <= limit } }
func atLeast(limit float64) func(float64) bool { return func(v float64) bool { return v >= limit } }
