package node

import (
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/agent"
)

func TestRateMeterUsesItsWindowAndStartsOverOnANewBaseline(t *testing.T) {
	r := newRates()
	t0 := time.Unix(1000, 0)
	if _, ok := r.rate("p"); ok {
		t.Fatal("a rate with no samples")
	}
	r.add("p", t0, 0)
	if _, ok := r.rate("p"); ok {
		t.Fatal("a rate from one sample")
	}
	// 1 MB/s for 5 s, then 3 MB/s: the window (10 samples) ends up all fast
	done := int64(0)
	for i := 1; i <= 5; i++ {
		done += 1e6
		r.add("p", t0.Add(time.Duration(i)*time.Second), done)
	}
	if got, _ := r.rate("p"); got != 1e6 {
		t.Fatalf("rate %v, want 1e6", got)
	}
	for i := 6; i <= 20; i++ {
		done += 3e6
		r.add("p", t0.Add(time.Duration(i)*time.Second), done)
	}
	if got, _ := r.rate("p"); got != 3e6 {
		t.Fatalf("rate %v, want 3e6 over the last window", got)
	}
	r.add("p", t0.Add(21*time.Second), 10) // a new baseline
	if _, ok := r.rate("p"); ok {
		t.Fatal("the meter kept samples of the previous baseline")
	}
}

func TestScanReportRateAndETA(t *testing.T) {
	now := time.Now()
	if scanReport(nil, now) != nil {
		t.Fatal("a report without a scan")
	}
	sc := &agent.ScanStatus{First: true, Started: now.Add(-10 * time.Second), Files: 10, Bytes: 100 << 20,
		FoundFiles: 40, FoundBytes: 400 << 20}
	r := scanReport(sc, now)
	if r.BytesPerSecond != 10<<20 || r.ETASeconds != nil || !r.First || r.FoundFiles != 40 {
		t.Fatalf("while listing: %+v", r)
	}
	sc.Listed = true
	r = scanReport(sc, now)
	if r.ETASeconds == nil || *r.ETASeconds != 30 {
		t.Fatalf("listed: %+v, want an ETA of 30 s", r)
	}
}
