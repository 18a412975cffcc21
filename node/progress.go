package node

import (
	"context"
	"sync"
	"time"
)

// Baseline progress rates: the node samples the done bytes of every pair
// in baseline each second and keeps the last rateWindow of samples, so
// that lag reports a rate and an ETA whenever it is asked.

const (
	rateEvery  = time.Second
	rateWindow = 10 // samples: a rate over the last ~10 s
)

type rateSample struct {
	at   time.Time
	done int64
}

// rateMeter is the recent history of one pair's done bytes.
type rateMeter struct {
	samples []rateSample // oldest first, at most rateWindow
	seen    bool         // sampled in the current round
}

// rates holds a meter per pair key ("source/folder->target").
type rates struct {
	mu     sync.Mutex
	meters map[string]*rateMeter
}

func newRates() *rates { return &rates{meters: make(map[string]*rateMeter)} }

// add records done for key at now; a smaller done than before (a new
// baseline) starts the meter over.
func (r *rates) add(key string, now time.Time, done int64) {
	m := r.meters[key]
	if m == nil {
		m = &rateMeter{}
		r.meters[key] = m
	}
	if n := len(m.samples); n > 0 && done < m.samples[n-1].done {
		m.samples = m.samples[:0]
	}
	if len(m.samples) == rateWindow {
		m.samples = append(m.samples[:0], m.samples[1:]...)
	}
	m.samples = append(m.samples, rateSample{at: now, done: done})
	m.seen = true
}

// rate returns key's bytes per second over its window, and whether there
// are enough samples to tell.
func (r *rates) rate(key string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.meters[key]
	if m == nil || len(m.samples) < 2 {
		return 0, false
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	secs := last.at.Sub(first.at).Seconds()
	if secs <= 0 {
		return 0, false
	}
	return float64(last.done-first.done) / secs, true
}

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
			pairs := n.Lag().Pairs
			n.rates.mu.Lock()
			for _, m := range n.rates.meters {
				m.seen = false
			}
			for _, p := range pairs {
				if p.State == "baseline" {
					n.rates.add(pairKey(p.Source, p.Folder, p.Target), now, p.BaselineDoneBytes)
				}
			}
			for k, m := range n.rates.meters {
				if !m.seen {
					delete(n.rates.meters, k)
				}
			}
			n.rates.mu.Unlock()
		}
	}
}

func pairKey(source, folder, target string) string { return source + "/" + folder + "->" + target }
