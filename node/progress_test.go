package node

import (
	"testing"
	"time"

	"github.com/vigil-mesh/vigil/node/agent"
)

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
