package node

import (
	"context"
	"time"
)

// Baseline progress rates: the node samples the done bytes of every pair
// in baseline each second and keeps the last rateWindow of samples, so
// that lag reports a rate and an ETA whenever it is asked.

const (
	rateEvery  = time.Second
	rateWindow = 10 // samples: a rate over the last ~10 s
)

// sampleRates samples the pairs in baseline every rateEvery until ctx ends;
// pairs that left the baseline are forgotten.
func (n *Node) sampleRates(ctx context.Context) error {
	t := time.NewTicker(rateEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			done := make(map[string]int64)
			for _, p := range n.Lag().Pairs {
				if p.State == "baseline" {
					done[pairKey(p.Source, p.Folder, p.Target)] = p.BaselineDoneBytes
				}
			}
			n.rates.Round(now, done)
		}
	}
}

func pairKey(source, folder, target string) string { return source + "/" + folder + "->" + target }
