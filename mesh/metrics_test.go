package mesh

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestStreamThroughputIsACounterWithoutRateGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	ms := cluster(t, 2, func(i int, cfg *Config) {
		if i == 0 {
			cfg.Registerer = reg
		}
	})
	a, b := ms[0], ms[1]
	echoFrames(a)
	s, err := b.Open(ctxTimeout(t, 10*time.Second), a.ID(), ProtoSync)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(s, 1, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadFrame(bufio.NewReader(s), 1<<20); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// libp2p's meters publish once a second: wait for the counter, then
	// look at everything the mesh exports next to it.
	var names []string
	eventually(t, 5*time.Second, "vigil_mesh_stream_bytes_total to be exported", func() bool {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		found := false
		for _, mf := range mfs {
			names = append(names, mf.GetName())
			if mf.GetName() == "vigil_mesh_stream_bytes_total" {
				found = len(mf.GetMetric()) > 0
				if mf.GetType().String() != "COUNTER" {
					t.Fatalf("vigil_mesh_stream_bytes_total is a %s, want a counter", mf.GetType())
				}
			}
		}
		return found
	})
	for _, n := range names {
		if strings.HasSuffix(n, "_per_second") {
			t.Errorf("metric %s is a rate sampled by the node; export a counter and let the query take rate()", n)
		}
	}
}
