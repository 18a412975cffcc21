package replica

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/index"
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
	gapWait       = 30 * time.Millisecond  // an out-of-order record waits this long for the missing ones
	behindWait    = 150 * time.Millisecond // a heartbeat ahead of us waits this long before a pull
	maxPending    = 8192                   // out-of-order records buffered from pubsub
	applyBatch    = 512                    // records applied per commit
	ackEvery      = time.Second
	retryBaseline = 2 * time.Second
	maxRetryWait  = 30 * time.Second
)

// Transport is what a replica needs of the network (transport.Network has
// it).
type Transport interface {
	Connected(p peer.ID) bool
	WaitConnected(ctx context.Context, p peer.ID) error
	OnConnect(fn func(peer.ID))
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
	rows       index.ReplicaRows
	log        *slog.Logger
	m          *Metrics
	onBaseline func(BaselineEvent)
	stageFiles int
	stageBytes int64

	// owned by the run goroutine
	files    *index.Tree
	locs     index.Locs
	pending  map[uint64]wire.Record
	repaired map[string]uint64
	gap      *time.Timer

	mu sync.Mutex // guards st
	st Status

	fetchedChunks atomic.Int64
	createdInRuns atomic.Int64 // files written by createRun
	msgs          chan []byte
	kick          chan struct{}
	ackKick       chan struct{}
	barrier       chan chan struct{}
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
	LastError   string
}

// New opens the replica's tree, history and index. Nothing runs until Run.
func New(cfg Config) (*Replica, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	src, srcName, folder := cfg.Source, cfg.SourceName, cfg.Folder
	root := filepath.Join(cfg.DataDir, "replicas", src.String(), folder)
	rep, err := store.OpenReplica(root)
	if err != nil {
		return nil, fmt.Errorf("replica: replica of %s/%s: %w", srcName, folder, err)
	}
	r := &Replica{
		source: src, sourceName: srcName, folder: folder, retention: cfg.Retention, rep: rep,
		db: cfg.DB, net: cfg.Net, rows: index.Replica(src.String(), folder), m: cfg.Metrics, onBaseline: cfg.OnBaseline,
		log:      cfg.Logger.With("subsystem", "replica", "source", srcName, "folder", folder),
		files:    index.NewTree(),
		locs:     make(index.Locs),
		pending:  make(map[uint64]wire.Record),
		repaired: make(map[string]uint64),
		msgs:     make(chan []byte, 256),
		kick:     make(chan struct{}, 1),
		ackKick:  make(chan struct{}, 1),
		barrier:  make(chan chan struct{}),
	}
	if r.m == nil {
		r.m = NewMetrics(nil)
	}
	r.stageFiles, r.stageBytes = cmp.Or(cfg.StageFiles, defaultStageFiles), cmp.Or(cfg.StageBytes, defaultStageBytes)
	r.hist, err = history.Open(cfg.DataDir, src.String(), folder)
	if err != nil {
		return nil, fmt.Errorf("replica: history of %s/%s: %w", srcName, folder, err)
	}
	if err := rep.CleanTemp(); err != nil {
		r.log.Warn("clean temporary files", "err", err)
	}
	if err := r.load(); err != nil {
		return nil, err
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
		r.st.Files, r.st.Bytes = r.files.Len(), r.files.Bytes()
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

// FetchedChunks counts the chunks fetched from the source since start.
func (r *Replica) FetchedChunks() int64 { return r.fetchedChunks.Load() }

// ParallelCreates counts the new files written by the parallel create
// path (a burst of new small files whose bytes all came inline).
func (r *Replica) ParallelCreates() int64 { return r.createdInRuns.Load() }

// Status returns the replica's current state.
func (r *Replica) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
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
	r.net.OnConnect(func(p peer.ID) {
		if p == r.source {
			r.poke(r.kick)
		}
	})
	r.gap = time.NewTimer(time.Hour)
	r.gap.Stop()
	defer r.gap.Stop()

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
				r.log.Warn("baseline incomplete; will retry", "err", err, "retry_in", wait)
				r.setStatus(func(s *Status) { s.LastError = err.Error() })
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
			close(done)
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
		head := p.Head
		// A heartbeat can arrive after newer records (gossipsub validates
		// on several workers): one behind the applied seq is stale, not a
		// sign of a reset journal (that is detected by a pull's end).
		r.noteHead(head, time.Time{})
		if head > st.Applied {
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
			if rec.Seq > st.Applied && len(r.pending) < maxPending {
				r.pending[rec.Seq] = rec
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
			delete(r.pending, next)
			batch = append(batch, rec)
			next++
		}
		if len(batch) == 0 {
			break
		}
		if err := r.applyRecords(ctx, batch); err != nil {
			r.log.Error("apply", "err", err)
			r.armGap(time.Second)
			return
		}
	}
	applied := r.Status().Applied
	for s := range r.pending {
		if s <= applied {
			delete(r.pending, s)
		}
	}
	if len(r.pending) > 0 {
		r.armGap(gapWait)
	}
}

// pull fetches the source's journal from the applied seq over a stream
// and applies it: the repair path for lost pubsub messages, restarts and
// reconnects.
func (r *Replica) pull(ctx context.Context) {
	st := r.Status()
	if !st.BaselineOK || !r.net.Connected(r.source) {
		return
	}
	s, err := r.openSync(ctx)
	if err != nil {
		r.log.Debug("pull", "err", err)
		r.armGap(time.Second)
		return
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	w := bufio.NewWriter(s)
	if err := writeFrame(w, wire.JournalReq, wire.EncodeFolderSeq(r.folder, st.Applied+1)); err != nil || w.Flush() != nil {
		r.armGap(time.Second)
		return
	}
	br := bufio.NewReaderSize(s, 256<<10)
	var batch []wire.Record
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		err := r.applyRecords(ctx, batch)
		batch = batch[:0]
		if err != nil {
			r.log.Error("apply", "err", err)
			r.armGap(time.Second)
			return false
		}
		return true
	}
	for {
		typ, body, err := readFrame(br)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Debug("pull: stream ended", "err", err)
				r.armGap(time.Second)
			}
			flush()
			return
		}
		switch typ {
		case wire.RecordFrame:
			rec, err := wire.DecodeRecord(body)
			if err != nil {
				r.log.Warn("bad record from source", "err", err)
				flush()
				return
			}
			rec.Payload = append([]byte(nil), rec.Payload...)
			r.noteHead(rec.Seq, rec.Time)
			batch = append(batch, rec)
			if len(batch) >= applyBatch && !flush() {
				return
			}
		case wire.End:
			head, err := wire.DecodeSeq(body)
			if err != nil {
				r.log.Warn("bad end frame from source", "err", err)
				flush()
				return
			}
			if !flush() {
				return
			}
			if applied := r.Status().Applied; head < applied {
				r.log.Warn("source journal is behind this replica (its data was reset); re-baselining",
					"head", head, "applied", applied)
				r.resetBaseline()
				return
			}
			r.noteHead(head, time.Time{})
			r.applyPending(ctx)
			return
		case wire.Compacted:
			flush()
			r.log.Warn("source no longer has the records this replica needs (journal compacted); re-baselining",
				"applied", r.Status().Applied)
			r.resetBaseline()
			return
		case wire.Error:
			r.log.Error("source refused journal request", "reason", string(body))
			r.setStatus(func(s *Status) { s.LastError = string(body) })
			r.armGap(5 * time.Second)
			return
		default:
			r.log.Warn("unexpected frame from source", "type", typ)
			return
		}
	}
}

func (r *Replica) resetBaseline() {
	r.setStatus(func(s *Status) { s.BaselineOK = false })
	if err := r.db.Update(func(tx *store.Tx) error {
		return r.rows.ClearBaselineDone(tx)
	}); err != nil {
		r.log.Error("save state", "err", err)
	}
	r.pending = make(map[uint64]wire.Record)
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
			r.log.Error("undecodable record from source; skipped", "seq", rec.Seq, "err", err)
		} else if err := ap.apply(ctx, rec.Seq, c); err != nil {
			firstErr = fmt.Errorf("replica: apply record %d (%s %s) to replica %s/%s: %w", rec.Seq, c.Op, c.Path, r.sourceName, r.folder, err)
			clear(ap.cur)
			break
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
		s.Files, s.Bytes = r.files.Len(), r.files.Bytes()
		s.LastError = ""
	})
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
			DoneBytes: st.DoneBytes, TotalBytes: st.TotalBytes, AppliedAt: st.AppliedAt}
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
		if err := writeFrame(s, wire.AckFrame, wire.EncodeAck(a)); err != nil {
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

// applier applies change records to the replica tree and its index.
type applier struct {
	r     *Replica
	dirty map[string]bool // index rows to rewrite
	dirs  map[string]bool // directories whose entries changed: fsync, restore mtime

	// history: the change being applied, the paths it touched, and the
	// versions the batch produced
	seq       uint64
	at        time.Time
	cur       map[string]bool
	versions  []history.Version
	preserved bool
}

func newApplier(r *Replica) *applier {
	return &applier{r: r, dirty: make(map[string]bool), dirs: make(map[string]bool), cur: make(map[string]bool)}
}

func (ap *applier) touch(p string) {
	ap.dirty[p] = true
	ap.dirs[index.Parent(p)] = true
	ap.cur[p] = true
}

// endChange records the state of every path the current change touched as
// a version at the change's seq and time.
func (ap *applier) endChange() {
	for p := range ap.cur {
		ap.versions = append(ap.versions, history.Version{Path: p, Seq: ap.seq, Time: ap.at, Entry: ap.r.files.Get(p)})
	}
	clear(ap.cur)
}

// keep copies the content of file e that next does not hold into the
// history store before the replica's copy goes away.
func (ap *applier) keep(e, next *baseline.Entry) error {
	if e == nil || e.Kind != baseline.KindFile || ap.r.retention <= 0 {
		return nil
	}
	if err := ap.r.hist.Preserve(ap.r.rep, e, next); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			ap.r.log.Warn("replica file missing; its history is lost", "path", e.Path, "err", err)
			return nil
		}
		var pe *store.PathError
		if errors.As(err, &pe) {
			return err
		}
		ap.r.log.Warn("history incomplete", "path", e.Path, "err", err)
	}
	ap.preserved = true
	return nil
}

// removePath removes p and its subtree from the replica, keeping the
// removed files' content in the history first.
func (ap *applier) removePath(p string) error {
	var errs []error
	ap.r.files.Walk(p, func(e *baseline.Entry) {
		if err := ap.keep(e, nil); err != nil {
			errs = append(errs, err)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := ap.r.rep.Remove(p); err != nil {
		return err
	}
	ap.remove(p)
	return nil
}

// skip reports whether a record at seq for p is older than a repair that
// already brought p (or one of its parents) to a newer state.
func (ap *applier) skip(p string, seq uint64) bool {
	if len(ap.r.repaired) == 0 {
		return false
	}
	for q := p; q != ""; q = index.Parent(q) {
		if s, ok := ap.r.repaired[q]; ok && s >= seq {
			return true
		}
	}
	return false
}

// createRun applies a run of consecutive records that each create a new
// file whose bytes all travel inline (a burst of new small files): the
// files are written and fsynced in parallel (fsyncs of different files
// share the file system's journal commits), then entered in the index in
// seq order. It returns how many records it applied and the last of them;
// runs shorter than minCreateRun are left to the one-by-one path.
func (ap *applier) createRun(ctx context.Context, recs []wire.Record) (int, wire.Record, error) {
	const minCreateRun, maxParallel = 4, 4
	r := ap.r
	type job struct {
		rec wire.Record
		c   *wire.Change
		e   baseline.Entry
		err error
	}
	var run []*job
	paths := make(map[string]bool)
	next := recs[0].Seq
	for _, rec := range recs {
		if rec.Seq != next {
			break
		}
		c, err := wire.DecodeChange(rec.Payload)
		if err != nil || c.Op != wire.OpPut || c.Entry.Kind != baseline.KindFile || c.BaseRoot.Defined() ||
			r.files.Get(c.Path) != nil || paths[c.Path] || ap.skip(c.Path, rec.Seq) {
			break
		}
		if q := index.Parent(c.Path); q != "" {
			if pe := r.files.Get(q); pe != nil && pe.Kind != baseline.KindDir {
				break
			}
		}
		chunks, err := c.Splice.Apply(nil)
		if err != nil || sumChunks(chunks) != c.Entry.Size {
			break
		}
		inline := true
		for _, ch := range chunks {
			if _, ok := c.Data[ch.CID]; !ok {
				inline = false
				break
			}
		}
		if !inline {
			break
		}
		e := c.Entry
		e.Path, e.Chunks = c.Path, chunks
		run = append(run, &job{rec: rec, c: c, e: e})
		paths[c.Path] = true
		next++
	}
	if len(run) < minCreateRun {
		return 0, wire.Record{}, nil
	}
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for _, j := range run {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			j.err = r.rep.WriteFile(j.e.Path, j.e.Mode, j.e.MTime, func(f *os.File) error {
				for _, ch := range j.e.Chunks {
					d := j.c.Data[ch.CID]
					if err := baseline.VerifyChunk(ch.CID, d); err != nil {
						return err
					}
					if _, err := f.Write(d); err != nil {
						return err
					}
				}
				return nil
			}, store.NoDirSync())
		}()
	}
	wg.Wait()
	n := 0
	var last wire.Record
	for _, j := range run {
		if j.err != nil {
			return n, last, fmt.Errorf("replica: apply record %d (put %s) to replica %s/%s: %w", j.rec.Seq, j.c.Path, r.sourceName, r.folder, j.err)
		}
		ap.seq, ap.at = j.rec.Seq, j.rec.Time
		e := j.e
		r.files.Put(&e)
		r.locs.Add(&e)
		ap.touch(e.Path)
		ap.endChange()
		n, last = n+1, j.rec
	}
	r.createdInRuns.Add(int64(n))
	return n, last, nil
}

// repairedBelow reports whether a path at or below p was repaired to a
// state as of seq or later.
func (ap *applier) repairedBelow(p string, seq uint64) bool {
	for q, s := range ap.r.repaired {
		if s >= seq && (q == p || strings.HasPrefix(q, p+"/")) {
			return true
		}
	}
	return false
}

func (ap *applier) apply(ctx context.Context, seq uint64, c *wire.Change) error {
	if c.Op == wire.OpRename {
		// A repair may already have brought one end of the move past this
		// record: then only the other end needs updating.
		fromDone, toDone := ap.skip(c.Path, seq), ap.skip(c.To, seq)
		switch {
		case fromDone && toDone:
			return nil
		case fromDone:
			return ap.repair(ctx, c.To)
		case toDone:
			return ap.removePath(c.Path)
		}
	} else if ap.skip(c.Path, seq) {
		return nil
	}
	err := ap.applyOp(ctx, c)
	if err == nil && c.Op == wire.OpRename && (ap.repairedBelow(c.Path, seq) || ap.repairedBelow(c.To, seq)) {
		// Something below the moved tree was repaired to a state newer
		// than this record: the move carried (or dropped) it under the
		// wrong assumptions, so bring the destination to the source's
		// current state as a whole.
		return ap.repair(ctx, c.To)
	}
	if err == nil || !(errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
		return err
	}
	// The replica tree is not what the index says: an apply was cut short
	// (the node was killed after renaming files into place but before the
	// commit) or someone changed the replica. Forget what is not on disk
	// and bring the paths to the source's current state.
	ap.r.log.Info("replica differs from its index; repairing from the source", "path", c.Path, "op", c.Op.String(), "err", err)
	paths := []string{c.Path}
	if c.Op == wire.OpRename {
		paths = append(paths, c.To)
	}
	for _, p := range paths {
		var gone []string
		ap.r.files.Walk(p, func(e *baseline.Entry) {
			if _, lerr := ap.r.rep.Lstat(e.Path); lerr != nil {
				gone = append(gone, e.Path)
			}
		})
		for _, g := range gone {
			ap.remove(g)
		}
	}
	for _, p := range paths {
		if err := ap.repair(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (ap *applier) applyOp(ctx context.Context, c *wire.Change) error {
	r := ap.r
	switch c.Op {
	case wire.OpDelete:
		if err := ap.removePath(c.Path); err != nil {
			return err
		}
	case wire.OpRename:
		if r.files.Get(c.Path) == nil {
			return ap.repair(ctx, c.To)
		}
		var errs []error
		r.files.Walk(c.To, func(e *baseline.Entry) { errs = append(errs, ap.keep(e, nil)) })
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if err := r.rep.Rename(c.Path, c.To); err != nil {
			return err
		}
		for _, p := range []string{c.Path, c.To} {
			r.files.Walk(p, func(e *baseline.Entry) {
				r.locs.Drop(e)
				ap.touch(e.Path)
			})
		}
		for _, e := range r.files.Rename(c.Path, c.To) {
			r.locs.Add(e)
			ap.touch(e.Path)
		}
	case wire.OpMeta:
		e := r.files.Get(c.Path)
		if e == nil {
			return ap.repair(ctx, c.Path)
		}
		if err := r.rep.SetMeta(c.Path, c.Entry.Mode, c.Entry.MTime); err != nil {
			return err
		}
		ne := *e
		ne.Mode, ne.MTime = c.Entry.Mode, c.Entry.MTime
		r.files.Put(&ne)
		ap.touch(c.Path)
	case wire.OpPut:
		return ap.put(ctx, c)
	}
	return nil
}

func (ap *applier) remove(p string) {
	for _, e := range ap.r.files.Remove(p) {
		ap.r.locs.Drop(e)
		ap.touch(e.Path)
	}
}

func (ap *applier) put(ctx context.Context, c *wire.Change) error {
	r := ap.r
	prev := r.files.Get(c.Path)
	e := c.Entry
	e.Path = c.Path
	if prev != nil && prev.Kind == baseline.KindDir && e.Kind != baseline.KindDir {
		if err := ap.removePath(c.Path); err != nil {
			return err
		}
		prev = nil
	}
	if prev != nil && prev.Kind == baseline.KindFile && e.Kind != baseline.KindFile {
		if err := ap.keep(prev, nil); err != nil {
			return err
		}
	}
	switch e.Kind {
	case baseline.KindDir:
		if err := r.rep.Mkdir(c.Path, e.Mode, e.MTime); err != nil {
			return err
		}
	case baseline.KindSymlink:
		if err := r.rep.Symlink(c.Path, e.Target, e.MTime); err != nil {
			return err
		}
	case baseline.KindFile:
		var base []baseline.Chunk
		switch {
		case !c.BaseRoot.Defined() && (prev == nil || prev.Kind != baseline.KindFile):
		case prev != nil && prev.Kind == baseline.KindFile && c.BaseRoot.Defined() && prev.Root().Equals(c.BaseRoot):
			base = prev.Chunks
		default:
			return ap.repair(ctx, c.Path)
		}
		chunks, err := c.Splice.Apply(base)
		if err != nil {
			return ap.repair(ctx, c.Path)
		}
		e.Chunks = chunks
		if sumChunks(chunks) != e.Size {
			return ap.repair(ctx, c.Path)
		}
		if err := ap.writeFile(ctx, &e, prev, c.Data); err != nil {
			if errors.Is(err, errChunkUnavailable) {
				return ap.repair(ctx, c.Path)
			}
			return err
		}
	}
	if prev != nil {
		r.locs.Drop(prev)
	}
	ne := e
	r.files.Put(&ne)
	r.locs.Add(&ne)
	ap.touch(c.Path)
	return nil
}

var errChunkUnavailable = errors.New("replica: chunk unavailable")

func sumChunks(cs []baseline.Chunk) int64 {
	var n int64
	for _, c := range cs {
		n += int64(c.Size)
	}
	return n
}

// writeFile writes e's content into the replica: chunks come from the
// record's inline data, from the replica's own files (the previous version
// or any other file holding the chunk), or are fetched from the source.
func (ap *applier) writeFile(ctx context.Context, e *baseline.Entry, prev *baseline.Entry, data map[cid.Cid][]byte) error {
	r := ap.r
	// Chunks neither inline nor local are fetched first.
	var want []cid.Cid
	seen := make(map[cid.Cid]bool)
	for _, ch := range e.Chunks {
		if seen[ch.CID] {
			continue
		}
		seen[ch.CID] = true
		if _, ok := data[ch.CID]; ok {
			continue
		}
		if len(r.locs[ch.CID]) > 0 {
			continue
		}
		// a chunk this replica held before (kept in its history) need
		// not travel again
		if ok, _ := r.hist.Chunks.Has(ch.CID); ok {
			if d, err := r.hist.Chunks.Get(ch.CID); err == nil && baseline.VerifyChunk(ch.CID, d) == nil {
				if data == nil {
					data = make(map[cid.Cid][]byte)
				}
				data[ch.CID] = d
				continue
			}
		}
		want = append(want, ch.CID)
	}
	if err := ap.keep(prev, e); err != nil {
		return err
	}
	// The chunks to fetch stream in while the file is written (in order of
	// first use), so memory does not grow with the change.
	stream := r.streamChunks(ctx, want)
	defer stream.close()
	wanted := make(map[cid.Cid]bool, len(want))
	for _, c := range want {
		wanted[c] = true
	}
	src := newLocalReader(r)
	defer src.close()
	err := r.rep.WriteFile(e.Path, e.Mode, e.MTime, func(f *os.File) error {
		run := runCopier{lr: src}
		written := make(map[cid.Cid]int64) // fetched chunks already in f
		var off int64
		for _, ch := range e.Chunks {
			at := off
			off += int64(ch.Size)
			d, ok := data[ch.CID]
			switch {
			case ok:
				if err := baseline.VerifyChunk(ch.CID, d); err != nil {
					return err
				}
			case !wanted[ch.CID]:
				if err := run.add(f, ch); err != nil {
					return err
				}
				continue
			default:
				if err := run.flush(f); err != nil {
					return err
				}
				if o, seen := written[ch.CID]; seen {
					if err := copyWithin(f, o, int64(ch.Size)); err != nil {
						return err
					}
					continue
				}
				got, err := stream.next(ch.CID)
				if err != nil {
					return err
				}
				if got == nil {
					return errChunkUnavailable
				}
				d = got
				written[ch.CID] = at
			}
			if err := run.flush(f); err != nil {
				return err
			}
			if _, err := f.Write(d); err != nil {
				return err
			}
		}
		return run.flush(f)
	}, store.NoDirSync())
	if err != nil {
		return err
	}
	if err := stream.wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// runCopier copies local chunks in runs: consecutive chunks that sit back
// to back in one replica file (the unchanged parts of a file's previous
// version, typically) are copied with one in-kernel copy.
type runCopier struct {
	lr   *localReader
	path string
	off  int64
	n    int64
}

func (rc *runCopier) add(dst *os.File, ch baseline.Chunk) error {
	locs := rc.lr.r.locs[ch.CID]
	if len(locs) == 0 {
		return errChunkUnavailable
	}
	pick := locs[0]
	for _, l := range locs {
		if rc.n > 0 && l.Path == rc.path && l.Off == rc.off+rc.n {
			pick = l
			break
		}
	}
	if rc.n > 0 && pick.Path == rc.path && pick.Off == rc.off+rc.n {
		rc.n += int64(pick.Size)
		return nil
	}
	if err := rc.flush(dst); err != nil {
		return err
	}
	rc.path, rc.off, rc.n = pick.Path, pick.Off, int64(pick.Size)
	return nil
}

func (rc *runCopier) flush(dst *os.File) error {
	if rc.n == 0 {
		return nil
	}
	err := rc.lr.copyRange(dst, rc.path, rc.off, rc.n)
	rc.n = 0
	return err
}

// localReader copies chunks out of the replica's files, keeping the last
// file open.
type localReader struct {
	r    *Replica
	path string
	f    *os.File
}

func newLocalReader(r *Replica) *localReader { return &localReader{r: r} }

func (lr *localReader) close() {
	if lr.f != nil {
		lr.f.Close()
		lr.f = nil
	}
}

// use makes the replica file p the open one; false if it cannot be opened.
func (lr *localReader) use(p string) bool {
	if p == lr.path {
		return true
	}
	lr.close()
	f, err := lr.r.rep.Open(p)
	if err != nil {
		return false
	}
	lr.f, lr.path = f, p
	return true
}

// copyRange copies n bytes at off of the replica file p into dst.
func (lr *localReader) copyRange(dst *os.File, p string, off, n int64) error {
	if !lr.use(p) {
		return errChunkUnavailable
	}
	if _, err := lr.f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	got, err := io.Copy(dst, io.LimitReader(lr.f, n))
	if err != nil {
		return fmt.Errorf("replica: copy %d bytes from %s: %w", n, p, err)
	}
	if got != n {
		return errChunkUnavailable // the file is shorter than the index says
	}
	return nil
}

// readChunk reads a chunk from the replica's files.
func (lr *localReader) readChunk(ch baseline.Chunk) ([]byte, error) {
	for _, l := range lr.r.locs[ch.CID] {
		if !lr.use(l.Path) {
			continue
		}
		buf := make([]byte, l.Size)
		if _, err := lr.f.ReadAt(buf, l.Off); err == nil {
			return buf, nil
		}
	}
	return nil, errChunkUnavailable
}

// copyChunk copies a chunk from the first replica file that holds it and
// can be opened.
func (lr *localReader) copyChunk(dst *os.File, ch baseline.Chunk) error {
	for _, l := range lr.r.locs[ch.CID] {
		if lr.use(l.Path) {
			return lr.copyRange(dst, l.Path, l.Off, int64(l.Size))
		}
	}
	return errChunkUnavailable
}

// repair brings p (and its subtree) to the source's current state,
// fetched over a stream, when a record cannot be applied on what this
// replica holds. Records up to the state's seq are then skipped for p.
func (ap *applier) repair(ctx context.Context, p string) error {
	r := ap.r
	seq, ents, err := r.fetchPath(ctx, p)
	if err != nil {
		return err
	}
	r.log.Info("repairing path from the source's current state", "path", p, "as_of", seq, "entries", len(ents))
	keep := make(map[string]bool, len(ents))
	for i := range ents {
		keep[ents[i].Path] = true
	}
	// remove what the source no longer has below p
	var stale []string
	r.files.Walk(p, func(e *baseline.Entry) {
		if !keep[e.Path] {
			stale = append(stale, e.Path)
		}
	})
	for _, s := range stale {
		if r.files.Get(s) == nil {
			continue
		}
		if err := ap.removePath(s); err != nil {
			return err
		}
	}
	if len(ents) == 0 {
		if err := ap.removePath(p); err != nil {
			return err
		}
	}
	for i := range ents {
		e := ents[i]
		prev := r.files.Get(e.Path)
		if prev != nil && prev.SameContent(&e) {
			if !prev.SameMeta(&e) {
				if err := r.rep.SetMeta(e.Path, e.Mode, e.MTime); err != nil {
					return err
				}
			}
		} else {
			if prev != nil && prev.Kind == baseline.KindDir && e.Kind != baseline.KindDir {
				if err := ap.removePath(e.Path); err != nil {
					return err
				}
				prev = nil
			}
			if prev != nil && prev.Kind == baseline.KindFile && e.Kind != baseline.KindFile {
				if err := ap.keep(prev, nil); err != nil {
					return err
				}
			}
			switch e.Kind {
			case baseline.KindDir:
				err = r.rep.Mkdir(e.Path, e.Mode, e.MTime)
			case baseline.KindSymlink:
				err = r.rep.Symlink(e.Path, e.Target, e.MTime)
			default:
				err = ap.writeFile(ctx, &e, prev, nil)
			}
			if errors.Is(err, errChunkUnavailable) {
				// The file changed again at the source meanwhile. What this
				// replica holds for it is stale: drop it, so that the later
				// records for it (a modification, a rename) find no base and
				// repair it again instead of building on stale content.
				r.log.Info("path changed again during repair; dropped until a later record repairs it", "path", e.Path)
				if prev != nil {
					if err := ap.removePath(e.Path); err != nil {
						return err
					}
				}
				continue
			}
			if err != nil {
				return err
			}
		}
		if prev != nil {
			r.locs.Drop(prev)
		}
		ne := e
		r.files.Put(&ne)
		r.locs.Add(&ne)
		ap.touch(e.Path)
	}
	r.repaired[p] = seq
	return nil
}

// fetchPath asks the source for the current entries of p and its subtree.
func (r *Replica) fetchPath(ctx context.Context, p string) (uint64, []baseline.Entry, error) {
	s, err := r.openSync(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer s.Reset()
	w := bufio.NewWriter(s)
	if err := writeFrame(w, wire.PathReq, wire.EncodePathReq(r.folder, p)); err != nil {
		return 0, nil, err
	}
	if err := w.Flush(); err != nil {
		return 0, nil, err
	}
	br := bufio.NewReader(s)
	var seq uint64
	var out []baseline.Entry
	for {
		typ, body, err := readFrame(br)
		if err != nil {
			return 0, nil, fmt.Errorf("replica: path request to %s: %w", r.sourceName, err)
		}
		switch typ {
		case wire.PathHead:
			if seq, err = wire.DecodeSeq(body); err != nil {
				return 0, nil, fmt.Errorf("replica: path request to %s: %w", r.sourceName, err)
			}
		case wire.Entries:
			es, err := wire.DecodeEntries(body)
			if err != nil {
				return 0, nil, err
			}
			for _, e := range es {
				if e.Path != p && !strings.HasPrefix(e.Path, p+"/") {
					return 0, nil, fmt.Errorf("replica: source answered path %q for %q", e.Path, p)
				}
			}
			out = append(out, es...)
		case wire.End:
			sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
			return seq, out, nil
		case wire.Error:
			return 0, nil, wire.DecodeError(body)
		default:
			return 0, nil, fmt.Errorf("replica: unexpected frame 0x%02x from %s", typ, r.sourceName)
		}
	}
}

// finish makes the batch durable on disk: directory mtimes restored
// (children changes moved them), then each touched directory fsynced.
func (ap *applier) finish() error {
	r := ap.r
	if ap.preserved {
		// history chunks are written without fsync: make them durable
		// before the versions that need them are committed
		if err := r.rep.SyncFS(); err != nil {
			return err
		}
		ap.preserved = false
	}
	dirs := make([]string, 0, len(ap.dirs))
	for d := range ap.dirs {
		dirs = append(dirs, d)
	}
	// deepest first, so restoring a child's mtime happens before its parent's
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		rel := d
		if rel == "" {
			rel = "."
		}
		if e := r.files.Get(d); e != nil && e.Kind == baseline.KindDir {
			if err := r.rep.SetMeta(d, e.Mode, e.MTime); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if err := r.rep.SyncDir(rel); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (ap *applier) save(tx *store.Tx) error {
	if ap.r.retention > 0 {
		if err := ap.r.hist.Save(tx, ap.versions); err != nil {
			return err
		}
	}
	ap.versions = ap.versions[:0]
	return ap.r.rows.Files().Sync(tx, ap.r.files, ap.dirty)
}
