// Package rate measures rates of progress: a meter per key keeps the last
// samples of a growing count, and tells the count's rate over them.
package rate

import (
	"sync"
	"time"
)

type sample struct {
	at   time.Time
	done int64
}

// Meters holds a meter per key. Safe for concurrent use.
type Meters struct {
	window int // samples kept per key
	mu     sync.Mutex
	meters map[string][]sample // oldest first, at most window
}

// New returns meters that each keep the last window samples.
func New(window int) *Meters {
	return &Meters{window: max(window, 2), meters: make(map[string][]sample)}
}

// Round records one sample per key of done (its count at now) and forgets
// the keys done does not hold. A count smaller than the last one (the work
// started over) starts its meter over.
func (m *Meters) Round(now time.Time, done map[string]int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.meters {
		if _, ok := done[k]; !ok {
			delete(m.meters, k)
		}
	}
	for k, d := range done {
		m.add(k, now, d)
	}
}

// Add records one sample of key.
func (m *Meters) Add(key string, now time.Time, done int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.add(key, now, done)
}

func (m *Meters) add(key string, now time.Time, done int64) {
	s := m.meters[key]
	if n := len(s); n > 0 && done < s[n-1].done {
		s = s[:0]
	}
	if len(s) == m.window {
		s = append(s[:0], s[1:]...)
	}
	m.meters[key] = append(s, sample{at: now, done: done})
}

// Rate returns key's count per second over its samples, and whether there
// are enough samples to tell.
func (m *Meters) Rate(key string) (float64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.meters[key]
	if len(s) < 2 {
		return 0, false
	}
	first, last := s[0], s[len(s)-1]
	secs := last.at.Sub(first.at).Seconds()
	if secs <= 0 {
		return 0, false
	}
	return float64(last.done-first.done) / secs, true
}
