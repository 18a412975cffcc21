package replica

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/node/replica/client"
	"github.com/vigil-mesh/vigil/node/transport"
	"github.com/vigil-mesh/vigil/node/wire"
	"github.com/vigil-mesh/vigil/store"
)

// A baseline commits its files in groups of at most defaultStageFiles
// files or defaultStageBytes bytes (one syncfs before and one after
// renaming them); Config.StageFiles and StageBytes change that.
const (
	defaultStageBytes int64 = 256 << 20
	defaultStageFiles       = 2048
)

const (
	gapWait         = 30 * time.Millisecond  // an out-of-order record waits this long for the missing ones
	behindWait      = 150 * time.Millisecond // a heartbeat ahead of us waits this long before a pull
	maxPending      = 8192                   // out-of-order records buffered from pubsub
	maxPendingBytes = 32 << 20               // and their bytes
	applyBatch      = 512                    // records applied per commit
	ackEvery        = time.Second
	retryBaseline   = 2 * time.Second
	maxRetryWait    = 30 * time.Second
)

// Transport is what a replica needs of the network (transport.Network has
// it).
type Transport interface {
	Connected(p peer.ID) bool
	WaitConnected(ctx context.Context, p peer.ID) error
	OnConnect(fn func(peer.ID)) (cancel func())
	Open(ctx context.Context, p peer.ID, proto protocol.ID) (transport.Stream, error)
	JoinFolder(source peer.ID, folder string, members []peer.ID) (transport.Topic, error)
}

// Config is what a replica is made of.
type Config struct {
	Source     peer.ID
	SourceName string
	Folder     string
	// Retention is how long history is kept (0: none).
	Retention time.Duration
	// DataDir holds the replica tree (replicas/<source>/<folder>) and its
	// history (history/<source>/<folder>).
	DataDir string
	DB      *store.DB
	Net     Transport
	Logger  *slog.Logger
	Metrics *Metrics // nil: none
	// OnBaseline, if set, is called as a baseline progresses (from the
	// replica's goroutine: it must not block).
	OnBaseline func(BaselineEvent)
	// StageFiles and StageBytes bound a baseline's commit groups (0: the
	// defaults, 2048 files or 256 MiB).
	StageFiles int
	StageBytes int64
	// ProblemRetry is how often paths that could not be written are tried
	// again (0: every 30s).
	ProblemRetry time.Duration
	// Faults makes writes to the replica fail on command (tests).
	Faults *store.Faults
}

// BaselineEvent reports the progress of a baseline.
type BaselineEvent struct {
	Source     peer.ID
	Folder     string
	DoneBytes  int64
	TotalBytes int64
	Fetched    int64 // chunks fetched over the network so far
	Finished   bool
}

// Replica keeps one source's folder on this node: the replicated tree, its
// index, its history, and the position in the source's journal.
type Replica struct {
	source     peer.ID
	sourceName string
	folder     string
	retention  time.Duration
	rep        *store.Replica
	hist       *history.Store
	db         *store.DB
	net        Transport
	src        *client.Client
	rows       index.ReplicaRows
	log        *slog.Logger
	m          *Metrics
	onBaseline func(BaselineEvent)
	stageFiles int
	stageBytes int64
	retryEvery time.Duration

	// owned by the run goroutine
	files   *index.Tree
	locs    index.Locs
	pending map[uint64]wire.Record
	// pendingBytes are the payload bytes in pending, at most
	// maxPendingBytes: beyond, records are dropped and pulled later
	pendingBytes int
	repaired     map[string]uint64
	damaged      map[string]bool // replica files found not to match their index, until rewritten
	gap          *time.Timer

	mu       sync.Mutex // guards st, problems and unsent
	st       Status
	problems map[string]Problem
	// unsent: paths a repair could not bring to the source's state (the
	// source could not send the bytes), since when; retried, a problem
	// after unsentGrace
	unsent map[string]time.Time

	fetchedChunks atomic.Int64
	createdInRuns atomic.Int64 // files written by createRun
	msgs          chan []byte
	kick          chan struct{}
	ackKick       chan struct{}
	barrier       chan chan struct{}
	fixes         chan fixReq
}

// Status is what lag and status report about a replica.
type Status struct {
	Applied     uint64
	AppliedAt   time.Time // when this node applied Applied
	RecordTime  time.Time // source time of record Applied
	Head        uint64    // newest source seq this node has heard of
	BehindSince time.Time // when Head first went past Applied (lag_seconds when record times are unknown)
	OldestTime  time.Time // source time of the oldest record not yet applied, when known
	Baseline    bool
	BaselineOK  bool
	DoneBytes   int64
	TotalBytes  int64
	Files       int
	Bytes       int64
	LastError   string    // the problem blocking the replica, if any
	Problems    []Problem // what keeps the replica from holding the source's changes
	// Unsent counts paths being brought to the source's state again (see
	// Replica.unsent): not synced, not failing yet.
	Unsent int
}

// New opens the replica's tree, history and index. Nothing runs until Run.
func New(cfg Config) (*Replica, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	src, srcName, folder := cfg.Source, cfg.SourceName, cfg.Folder
	root := filepath.Join(cfg.DataDir, "replicas", src.String(), folder)
	rep, err := store.OpenReplica(root, store.WithFaults(cfg.Faults))
	if err != nil {
		return nil, fmt.Errorf("replica: replica of %s/%s: %w", srcName, folder, err)
	}
	r := &Replica{
		source: src, sourceName: srcName, folder: folder, retention: cfg.Retention, rep: rep,
		db: cfg.DB, net: cfg.Net, src: client.New(cfg.Net, src, srcName, folder), rows: index.Replica(src.String(), folder), m: cfg.Metrics, onBaseline: cfg.OnBaseline,
		log:      cfg.Logger.With("subsystem", "replica", "source", srcName, "folder", folder),
		files:    index.NewTree(),
		locs:     make(index.Locs),
		pending:  make(map[uint64]wire.Record),
		repaired: make(map[string]uint64),
		damaged:  make(map[string]bool),
		problems: make(map[string]Problem),
		unsent:   make(map[string]time.Time),
		msgs:     make(chan []byte, 256),
		kick:     make(chan struct{}, 1),
		ackKick:  make(chan struct{}, 1),
		barrier:  make(chan chan struct{}),
		fixes:    make(chan fixReq),
	}
	if r.m == nil {
		r.m = NewMetrics(nil)
	}
	r.stageFiles, r.stageBytes = cmp.Or(cfg.StageFiles, defaultStageFiles), cmp.Or(cfg.StageBytes, defaultStageBytes)
	r.retryEvery = cmp.Or(cfg.ProblemRetry, problemRetry)
	r.hist, err = history.Open(cfg.DataDir, src.String(), folder)
	if err != nil {
		return nil, fmt.Errorf("replica: history of %s/%s: %w", srcName, folder, err)
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	if r.st.BaselineOK {
		// files staged by an apply cut short are not needed: the records
		// are applied again. (During a baseline they are salvaged.)
		if err := rep.CleanTemp(); err != nil {
			r.log.Warn("clean temporary files", "err", err)
		}
	}
	return r, nil
}

func (r *Replica) load() error {
	return r.db.View(func(tx *store.Tx) error {
		files, locs, err := r.rows.Files().LoadTree(tx)
		if err != nil {
			return fmt.Errorf("replica: index of replica %s/%s: %w", r.sourceName, r.folder, err)
		}
		r.files, r.locs = files, locs
		m := r.rows.Meta(tx)
		r.st.Applied, r.st.AppliedAt, r.st.RecordTime, r.st.BaselineOK = m.Applied, m.AppliedAt, m.RecordTime, m.BaselineOK
		r.st.Head = r.st.Applied
		r.st.Files, r.st.Bytes = r.files.Files(), r.files.Bytes()
		return nil
	})
}

// Source is the peer whose folder this is.
func (r *Replica) Source() peer.ID { return r.source }

// SourceName is the source's name in the config.
func (r *Replica) SourceName() string { return r.sourceName }

// Folder is the folder ID.
func (r *Replica) Folder() string { return r.folder }

// Retention is how long history is kept.
func (r *Replica) Retention() time.Duration { return r.retention }

// Root is the replica tree's directory.
func (r *Replica) Root() string { return r.rep.Root() }

// History is the replica's history store.
func (r *Replica) History() *history.Store { return r.hist }

// Rows are the replica's rows in the index database.
func (r *Replica) Rows() index.ReplicaRows { return r.rows }

// PendingBytes is the payload bytes of records held because they arrived
// before the ones they follow (at most 32 MiB). Read it only from tests or
// after Run returned: the run goroutine owns it.
func (r *Replica) PendingBytes() int { return r.pendingBytes }

// FetchedChunks counts the chunks fetched from the source since start.
func (r *Replica) FetchedChunks() int64 { return r.fetchedChunks.Load() }

// ParallelCreates counts the new files written by the parallel create
// path (a burst of new small files whose bytes all came inline).
func (r *Replica) ParallelCreates() int64 { return r.createdInRuns.Load() }

// Status returns the replica's current state.
func (r *Replica) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.Problems = r.problemList()
	st.Unsent = len(r.unsent)
	return st
}

func (r *Replica) setStatus(fn func(*Status)) {
	r.mu.Lock()
	fn(&r.st)
	r.mu.Unlock()
}

func (r *Replica) poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run keeps the replica in step with its source until ctx ends.
func (r *Replica) Run(ctx context.Context) error {
	topic, err := r.net.JoinFolder(r.source, r.folder, []peer.ID{r.source})
	if err != nil {
		return fmt.Errorf("replica: replica %s/%s: %w", r.sourceName, r.folder, err)
	}
	defer topic.Close() // a replica stopped by a reload leaves the topic
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			msg, err := topic.Next(ctx)
			if err != nil {
				return
			}
			select {
			case r.msgs <- msg:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		r.ackLoop(ctx)
	}()
	defer r.net.OnConnect(func(p peer.ID) {
		if p == r.source {
			r.poke(r.kick)
		}
	})()
	r.gap = time.NewTimer(time.Hour)
	r.gap.Stop()
	defer r.gap.Stop()

	problems := time.NewTicker(r.retryEvery)
	defer problems.Stop()
	unsent := time.NewTicker(unsentRetry)
	defer unsent.Stop()
	pruneEvery := min(max(r.retention/20, time.Second), time.Minute)
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	wait := retryBaseline
	for ctx.Err() == nil {
		if !r.Status().BaselineOK {
			if err := r.baseline(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if failsHere(err) {
					r.setProblem("", fmt.Errorf("baseline incomplete (retried in %v): %w", wait, err))
				} else {
					r.noteTransient(fmt.Errorf("baseline incomplete (retried in %v): %w", wait, err))
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				case <-r.kick:
				}
				wait = min(wait*2, maxRetryWait)
				continue
			}
			wait = retryBaseline
			r.pull(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case msg := <-r.msgs:
			r.onMessage(ctx, msg)
		case <-r.gap.C:
			r.pull(ctx)
		case <-r.kick:
			r.pull(ctx)
		case done := <-r.barrier:
			// what failed is tried again first, so that a problem fixed
			// meanwhile (space freed, a permission changed) counts at once
			if r.blockedNow() {
				r.pull(ctx)
			}
			r.retryProblems(ctx)
			r.retryUnsent(ctx)
			close(done)
		case req := <-r.fixes:
			req.reply <- r.repairPaths(ctx, req.fix)
		case <-problems.C:
			r.retryProblems(ctx)
		case <-unsent.C:
			r.retryUnsent(ctx)
		case now := <-prune.C:
			if r.retention > 0 {
				if err := r.hist.Prune(r.db, now, r.retention, r.log); err != nil {
					r.log.Error("prune history", "err", err)
				}
			}
		}
	}
	return nil
}

// onMessage handles one pubsub message from the source: records in order
// are applied at once, out-of-order ones wait a little for the gap to fill
// before the missing range is pulled over a stream.
func (r *Replica) onMessage(ctx context.Context, msg []byte) {
	p, err := wire.DecodePub(msg)
	if err != nil {
		r.log.Warn("bad message from source", "err", err)
		return
	}
	st := r.Status()
	switch p.Type {
	case wire.PubHeartbeat:
		// A heartbeat only says that there may be records to pull: the
		// head this replica reports is what the source served (a claim
		// proves nothing). One behind the applied seq is stale (gossipsub
		// validates on several workers), not a sign of a reset journal
		// (that is detected by a pull's end).
		if p.Head > st.Applied && st.BaselineOK {
			r.armGap(behindWait)
		}
	case wire.PubRecord, wire.PubAnnounce, wire.PubRecords:
		recs := p.Records
		for _, rec := range recs {
			r.noteHead(rec.Seq, rec.Time)
		}
		if !st.BaselineOK {
			return
		}
		if p.Type == wire.PubAnnounce {
			if recs[0].Seq > st.Applied {
				r.armGap(0)
			}
			return
		}
		for _, rec := range recs {
			if rec.Seq > st.Applied {
				r.hold(rec)
			}
		}
		if _, ok := r.pending[st.Applied+1]; ok {
			r.applyPending(ctx)
		} else if len(r.pending) > 0 {
			r.armGap(gapWait)
		}
	}
}

func (r *Replica) noteHead(head uint64, t time.Time) {
	r.setStatus(func(s *Status) {
		if head > s.Head {
			s.Head = head
		}
		if s.Head > s.Applied && s.BehindSince.IsZero() {
			s.BehindSince = time.Now()
		}
		if !t.IsZero() && head == s.Applied+1 {
			s.OldestTime = t
		}
	})
}

func (r *Replica) armGap(d time.Duration) {
	r.gap.Reset(d)
}

// applyPending applies the buffered records that follow the applied seq.
func (r *Replica) applyPending(ctx context.Context) {
	for {
		next := r.Status().Applied + 1
		var batch []wire.Record
		for len(batch) < applyBatch {
			rec, ok := r.pending[next]
			if !ok {
				break
			}
			r.release(next)
			batch = append(batch, rec)
			next++
		}
		if len(batch) == 0 {
			break
		}
		if err := r.applyRecords(ctx, batch); err != nil {
			r.blocked(err)
			return
		}
	}
	applied := r.Status().Applied
	for s := range r.pending {
		if s <= applied {
			r.release(s)
		}
	}
	if len(r.pending) > 0 {
		r.armGap(gapWait)
	}
}

// pullBatchBytes bounds the payload bytes of the records a pull holds
// before applying them.
const pullBatchBytes = 32 << 20

// pull fetches the source's journal from the applied seq over a stream
// and applies it: the repair path for lost pubsub messages, restarts and
// reconnects. What the replica believes of the source's head afterwards
// is what the source served, not what a heartbeat claimed.
func (r *Replica) pull(ctx context.Context) {
	st := r.Status()
	if !st.BaselineOK || !r.net.Connected(r.source) {
		return
	}
	var batch []wire.Record
	var batchBytes int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := r.applyRecords(ctx, batch)
		batch, batchBytes = batch[:0], 0
		return err
	}
	var served uint64 // newest seq the source sent
	head, err := r.src.Journal(ctx, st.Applied+1, func(rec wire.Record) error {
		rec.Payload = bytes.Clone(rec.Payload)
		r.noteHead(rec.Seq, rec.Time)
		served = max(served, rec.Seq)
		batch = append(batch, rec)
		batchBytes += len(rec.Payload)
		if len(batch) >= applyBatch || batchBytes >= pullBatchBytes {
			return flush()
		}
		return nil
	})
	if ferr := flush(); err == nil {
		err = ferr
	}
	var re *wire.RemoteError
	switch {
	case err == nil:
	case errors.Is(err, client.ErrCompacted):
		r.log.Warn("source no longer has the records this replica needs (journal compacted); re-baselining",
			"applied", r.Status().Applied)
		r.resetBaseline()
		return
	case errors.As(err, &re):
		r.setProblem("", fmt.Errorf("the source refused to send its journal: %w", err))
		r.armGap(5 * time.Second)
		return
	default:
		if ctx.Err() == nil {
			r.blocked(err)
		}
		return
	}
	applied := r.Status().Applied
	if head < applied {
		r.log.Warn("source journal is behind this replica (its data was reset); re-baselining",
			"head", head, "applied", applied)
		r.resetBaseline()
		return
	}
	// The source served everything up to head: that is its proven head. A
	// heartbeat that claimed more is forgotten.
	r.setStatus(func(s *Status) {
		s.Head = max(s.Applied, min(head, max(served, s.Applied)))
		if s.Head <= s.Applied {
			s.BehindSince, s.OldestTime = time.Time{}, time.Time{}
		}
	})
	r.applyPending(ctx)
}

// blocked records a failure that stops the replica from applying records
// (the disk is full, ...) and tries again in a second.
func (r *Replica) blocked(err error) {
	switch {
	case errors.Is(err, context.Canceled):
	case failsHere(err):
		r.setProblem("", err)
	default:
		r.noteTransient(err)
	}
	r.armGap(time.Second)
}

func (r *Replica) resetBaseline() {
	r.setStatus(func(s *Status) { s.BaselineOK = false })
	if err := r.db.Update(func(tx *store.Tx) error {
		return r.rows.ClearBaselineDone(tx)
	}); err != nil {
		r.log.Error("save state", "err", err)
	}
	r.pending, r.pendingBytes = make(map[uint64]wire.Record), 0
	r.poke(r.kick)
}

// applyRecords applies consecutive records and commits the new applied
// seq with the index rows in one transaction, after the files they wrote
// are durable.
func (r *Replica) applyRecords(ctx context.Context, recs []wire.Record) error {
	start := time.Now()
	ap := newApplier(r)
	applied := r.Status().Applied
	var last wire.Record
	var firstErr error
	for i := 0; i < len(recs); i++ {
		rec := recs[i]
		if rec.Seq <= applied {
			continue
		}
		if rec.Seq != applied+1 {
			break
		}
		if n, l, err := ap.createRun(ctx, recs[i:]); n > 0 || err != nil {
			if n > 0 {
				applied, last = l.Seq, l
				i += n - 1
			}
			if err != nil {
				firstErr = err
				break
			}
			continue
		}
		c, err := wire.DecodeChange(rec.Payload)
		ap.seq, ap.at = rec.Seq, rec.Time
		if err != nil {
			// What the record changed is unknown: only a new baseline
			// brings the replica back to the source's state.
			r.setProblem("", fmt.Errorf("record %d from the source cannot be decoded (%v); taking a new baseline", rec.Seq, err))
			r.resetBaseline()
			firstErr = err
			break
		}
		if err := ap.apply(ctx, rec.Seq, c); err != nil {
			if !pathProblem(err) {
				firstErr = fmt.Errorf("replica: apply record %d (%s %s) to replica %s/%s: %w", rec.Seq, c.Op, c.Path, r.sourceName, r.folder, err)
				clear(ap.cur)
				break
			}
			// This path cannot be written here: it is a problem of the
			// path, retried later, and the folder goes on.
			clear(ap.cur)
			for _, p := range []string{c.Path, c.To} {
				if p != "" {
					r.setProblem(p, fmt.Errorf("record %d (%s): %w", rec.Seq, c.Op, err))
					ap.forget(p)
				}
			}
		}
		ap.endChange()
		applied, last = rec.Seq, rec
	}
	if last.Seq == 0 {
		return firstErr
	}
	if err := ap.finish(); err != nil {
		return err
	}
	now := time.Now()
	err := r.db.Update(func(tx *store.Tx) error {
		if err := ap.save(tx); err != nil {
			return err
		}
		return r.rows.PutApplied(tx, applied, now, last.Time)
	})
	if err != nil {
		return fmt.Errorf("replica: save replica state %s/%s: %w", r.sourceName, r.folder, err)
	}
	for s := range r.repaired {
		if r.repaired[s] <= applied {
			delete(r.repaired, s)
		}
	}
	r.setStatus(func(s *Status) {
		s.Applied, s.AppliedAt, s.RecordTime = applied, now, last.Time
		if s.Head < applied {
			s.Head = applied
		}
		s.OldestTime = time.Time{}
		if s.Head > s.Applied {
			s.BehindSince = now
			if p, ok := r.pending[applied+1]; ok {
				s.OldestTime = p.Time
			}
		} else {
			s.BehindSince = time.Time{}
		}
		s.Files, s.Bytes = r.files.Files(), r.files.Bytes()
	})
	r.clearProblem("")
	r.clearPathProblems(ap.written)
	r.m.applyLatency.Observe(time.Since(start).Seconds())
	r.m.recordsApplied.Add(float64(len(recs)))
	r.poke(r.ackKick)
	return firstErr
}

// ackLoop tells the source what this replica has made durable: at once
// after each commit and every second while connected.
func (r *Replica) ackLoop(ctx context.Context) {
	var s transport.Stream
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	t := time.NewTicker(ackEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.ackKick:
		case <-t.C:
		}
		if !r.net.Connected(r.source) {
			if s != nil {
				s.Reset()
				s = nil
			}
			continue
		}
		st := r.Status()
		a := wire.Ack{Folder: r.folder, Applied: st.Applied, Baseline: !st.BaselineOK,
			DoneBytes: st.DoneBytes, TotalBytes: st.TotalBytes, AppliedAt: st.AppliedAt, Pending: uint64(st.Unsent)}
		for _, p := range st.Problems {
			a.Errors = append(a.Errors, wire.AckError{Path: p.Path, Err: p.Err, Since: p.Since})
		}
		if !st.BaselineOK {
			a.Applied = 0
		}
		if s == nil {
			octx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var err error
			s, err = r.net.Open(octx, r.source, mesh.ProtoAck)
			cancel()
			if err != nil {
				s = nil
				continue
			}
		}
		if err := mesh.WriteFrame(s, wire.AckFrame, wire.EncodeAck(a)); err != nil {
			s.Reset()
			s = nil
		}
	}
}

// Sync waits until the run loop has handled everything received before
// the call (used by the control endpoint).
func (r *Replica) Sync(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case r.barrier <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hold buffers a record that arrived before the ones it follows, unless
// the buffer is full (in records or bytes): then it is dropped, and the
// pull that fills the gap fetches it again. A source cannot make a backup
// hold more than maxPendingBytes this way.
func (r *Replica) hold(rec wire.Record) {
	if _, ok := r.pending[rec.Seq]; ok {
		return
	}
	if len(r.pending) >= maxPending || r.pendingBytes+len(rec.Payload) > maxPendingBytes {
		r.m.pendingDropped.Inc()
		return
	}
	r.pending[rec.Seq] = rec
	r.pendingBytes += len(rec.Payload)
}

// release forgets the buffered record seq.
func (r *Replica) release(seq uint64) {
	if rec, ok := r.pending[seq]; ok {
		r.pendingBytes -= len(rec.Payload)
		delete(r.pending, seq)
	}
}
