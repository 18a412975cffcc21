package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/schollz/progressbar/v3"

	"github.com/vigil-mesh/vigil/node/config"

	"github.com/vigil-mesh/vigil/node"
)

// progressRefresh is how often the baseline bar is redrawn at most.
const progressRefresh = 150 * time.Millisecond

// progressQueue is how many baseline events wait for the drawing goroutine;
// beyond it the oldest is dropped (a newer event supersedes it anyway).
const progressQueue = 64

// baselineProgress draws the baselines a node receives (as a target) as one
// progress bar on a terminal, while the node's log lines keep scrolling
// above it. Several concurrent baselines share the bar: it shows their
// summed bytes.
//
// Events arrive through Event from the replicas' goroutines and never block
// them; a goroutine of its own owns the bar. Log output must go through
// Write so that a log line clears the bar, prints, and the bar is redrawn
// below it. Option and Close accept a nil *baselineProgress (no terminal).
type baselineProgress struct {
	out    io.Writer               // the terminal
	name   func(peer.ID) string    // a source's name for the bar
	events chan node.BaselineEvent // Event -> run
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex // guards out and bar
	bar *progressbar.ProgressBar

	// Owned by run: where the current bar started, for its rate.
	since     time.Time
	sinceDone int64
}

// startBaselineProgress returns a running baselineProgress drawing on
// stderr, or nil when stderr is not a terminal (then logs stay plain).
func startBaselineProgress(stderr io.Writer, cfg *config.Config) *baselineProgress {
	if !isTerminal(stderr) {
		return nil
	}
	return newBaselineProgress(stderr, func(id peer.ID) string {
		if p, ok := cfg.PeerByID(id); ok && p.Name != "" {
			return p.Name
		}
		return shortID(id.String())
	})
}

// newBaselineProgress starts a baselineProgress drawing on out; name gives
// a source's display name.
func newBaselineProgress(out io.Writer, name func(peer.ID) string) *baselineProgress {
	ctx, cancel := context.WithCancel(context.Background())
	p := &baselineProgress{out: out, name: name, events: make(chan node.BaselineEvent, progressQueue),
		cancel: cancel, done: make(chan struct{})}
	go p.run(ctx)
	return p
}

// Option returns the node option that feeds p (no progress when p is nil).
func (p *baselineProgress) Option() node.Option {
	if p == nil {
		return node.WithBaselineProgress(nil)
	}
	return node.WithBaselineProgress(p.Event)
}

// Event queues ev for drawing without blocking: when the queue is full the
// oldest queued event is dropped.
func (p *baselineProgress) Event(ev node.BaselineEvent) {
	for range 2 {
		select {
		case p.events <- ev:
			return
		default:
		}
		select {
		case <-p.events: // drop the oldest
		default:
		}
	}
}

// Write writes a log line above the bar.
func (p *baselineProgress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		io.WriteString(p.out, "\r\x1b[2K")
	}
	n, err := p.out.Write(b)
	if p.bar != nil {
		p.bar.RenderBlank()
	}
	return n, err
}

// Close stops drawing, erases the bar and waits for the goroutine.
func (p *baselineProgress) Close() error {
	if p == nil {
		return nil
	}
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	return nil
}

type baselineKey struct {
	source peer.ID
	folder string
}

func (p *baselineProgress) run(ctx context.Context) {
	defer close(p.done)
	active := make(map[baselineKey]node.BaselineEvent)
	tick := time.NewTicker(progressRefresh)
	defer tick.Stop()
	dirty := false
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-p.events:
			k := baselineKey{ev.Source, ev.Folder}
			if ev.Finished || (ev.TotalBytes > 0 && ev.DoneBytes >= ev.TotalBytes) {
				delete(active, k)
			} else {
				active[k] = ev
			}
			dirty = true
		case <-tick.C:
			if dirty {
				p.draw(active)
				dirty = false
			}
		}
	}
}

// draw shows the sum of the active baselines, or erases the bar when none
// is left.
func (p *baselineProgress) draw(active map[baselineKey]node.BaselineEvent) {
	keys := make([]baselineKey, 0, len(active))
	var done, total int64
	for k, ev := range active {
		keys = append(keys, k)
		done += max(ev.DoneBytes, 0)
		total += max(ev.TotalBytes, 0)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if total <= 0 {
		p.clear()
		return
	}
	slices.SortFunc(keys, func(a, b baselineKey) int {
		return cmp.Or(cmp.Compare(a.source, b.source), cmp.Compare(a.folder, b.folder))
	})
	if p.bar == nil || p.bar.GetMax64() != total {
		// A new bar when the set of baselines changes: the old one's
		// count would be wrong. The rate is computed here rather than by
		// the bar, which would count the bytes done before it existed.
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.out),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionShowDescriptionAtLineEnd(),
		)
		p.since, p.sinceDone = time.Now(), done
	}
	desc := "baseline " + p.name(keys[0].source) + "/" + keys[0].folder
	if len(keys) > 1 {
		desc += fmt.Sprintf(" (+%d more)", len(keys)-1)
	}
	desc += ": " + humanBytes(done) + " of " + humanBytes(total)
	if el := time.Since(p.since); el >= time.Second && done > p.sinceDone {
		rate := float64(done-p.sinceDone) / el.Seconds()
		desc += fmt.Sprintf(", %s/s, %s left", humanBytes(int64(rate)),
			humanDuration(time.Duration(float64(total-done)/rate*float64(time.Second))))
	}
	p.bar.Describe(desc)
	p.bar.Set64(min(done, total-1)) // a full bar would finish it; the events say when it is done
	p.bar.RenderBlank()
}

// clear erases the bar; p.mu is held.
func (p *baselineProgress) clear() {
	if p.bar != nil {
		io.WriteString(p.out, "\r\x1b[2K")
		p.bar = nil
	}
}
