package watch

import (
	"slices"
	"time"
)

// Settling: a path is pending from its first event until it has been quiet
// for the quiet period (or pending for max_delay), then ready for a batch.

func (w *Watcher) markPending(rel string, now time.Time) {
	p, ok := w.pending[rel]
	if !ok {
		p.first = now
	}
	p.last = now
	w.pending[rel] = p
	w.arm(p.deadline(w.quiet, w.maxDelay))
}

func (p watchPending) deadline(quiet, maxDelay time.Duration) time.Time {
	q, m := p.last.Add(quiet), p.first.Add(maxDelay)
	if m.Before(q) {
		return m
	}
	return q
}

// arm makes the timer fire no later than t. It never moves the timer
// later: a stale early fire only rescans the pending set.
func (w *Watcher) arm(t time.Time) {
	if !w.timerAt.IsZero() && !t.Before(w.timerAt) {
		return
	}
	w.timerAt = t
	w.timer.Reset(time.Until(t))
}

// promoteDue moves the settled pending paths to the ready batch and arms
// the timer for the next deadline.
func (w *Watcher) promoteDue(now time.Time) {
	var next time.Time
	for rel, p := range w.pending {
		dl := p.deadline(w.quiet, w.maxDelay)
		if !dl.After(now) {
			w.readySet[rel] = struct{}{}
			w.readyBatch = nil
			delete(w.pending, rel)
		} else if next.IsZero() || dl.Before(next) {
			next = dl
		}
	}
	if !next.IsZero() {
		w.arm(next)
	}
}

// promoteAll moves every pending path to the ready batch.
func (w *Watcher) promoteAll() {
	for rel := range w.pending {
		w.readySet[rel] = struct{}{}
		w.readyBatch = nil
	}
	clear(w.pending)
	w.timer.Stop()
	w.timerAt = time.Time{}
}

func (w *Watcher) hasReady() bool { return w.readyRes || len(w.readySet) > 0 }

func (w *Watcher) buildBatch() Batch {
	if w.readyBatch == nil {
		paths := make([]string, 0, len(w.readySet))
		for p := range w.readySet {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		w.readyBatch = &Batch{Paths: paths, Rescan: w.readyRes}
	}
	return *w.readyBatch
}
