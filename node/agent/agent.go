package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-mesh/vigil/node/index"
	"github.com/vigil-mesh/vigil/node/watch"
	"github.com/vigil-mesh/vigil/node/wire"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/journal"
	"github.com/vigil-mesh/vigil/store"
)

const (
	// maxInlinePerRecord caps the chunk bytes one record carries; chunks
	// beyond it are fetched by CID from the source's files.
	maxInlinePerRecord = 8 << 20
	// maxBatchPayload caps the bytes appended to the journal in one call.
	maxBatchPayload = 32 << 20
	heartbeatEvery  = 500 * time.Millisecond
)

// Watcher is what an agent needs of the folder's watcher (*watch.Watcher).
type Watcher interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	Batches() <-chan watch.Batch
	Flush(ctx context.Context) error
	// Take hands over every path with changes, settled or not, after
	// reading the kernel's queue; Requeue gives paths back (they settle
	// again). See docs/capture.md.
	Take(ctx context.Context) (watch.Batch, error)
	Requeue(paths []string)
	// Resync brings its watches in line with the tree (after the ignore
	// rules changed) and asks for a full rescan.
	Resync()
}

// Publisher publishes on the folder's topic (a transport.Topic).
type Publisher interface {
	Publish(ctx context.Context, data []byte) error
}

// Config is what an agent is made of: its folder, and the journal, index
// database, watcher and topic it works with.
type Config struct {
	Folder  string    // folder ID
	Root    string    // absolute path of the folder
	Rules   *Rules    // paths left out (nil: none)
	Backups []peer.ID // designated backups
	// Journal is the folder's journal; the agent closes it on Close.
	Journal journal.Log
	// JournalExisted: the journal was there before this start (the folder
	// was protected before). With a new index, the backups then take a new
	// baseline: see newIndex.
	JournalExisted bool
	DB             *store.DB
	Watcher        Watcher
	Topic          Publisher
	// JournalMaxBytes: a backup further behind than this is re-baselined
	// (0: no cap).
	JournalMaxBytes int64
	Logger          *slog.Logger
	Metrics         *Metrics               // nil: none
	PeerName        func(p peer.ID) string // for logs; nil: the ID
	// ProblemRetry is how often paths that could not be read are read
	// again (0: every 10s; the watcher also reports a change of their
	// permissions at once).
	ProblemRetry time.Duration
	// ReadFaults makes reads of chosen paths fail (tests).
	ReadFaults *baseline.Faults
	// TornProblemAfter: a file that changes during every read of it for
	// this long is reported as a problem of its path (0: 10s).
	TornProblemAfter time.Duration
}

// Agent protects one folder: it keeps the folder's index, captures
// changes into the folder's journal, publishes them and serves the
// folder's snapshot, chunks and journal to the designated backups.
type Agent struct {
	id         string
	root       string
	rules      *Rules
	backups    []peer.ID
	j          journal.Log
	w          Watcher
	topic      Publisher
	db         *store.DB
	rows       index.AgentRows
	log        *slog.Logger
	m          *Metrics
	capBytes   int64
	names      func(peer.ID) string
	retryEvery time.Duration
	faults     *baseline.Faults
	tornAfter  time.Duration

	scan    scanProgress
	mu      sync.RWMutex // guards files, locs, seq, ready, scanned, acks
	files   *index.Tree
	locs    index.Locs
	seq     uint64 // journal seq that files reflects
	ready   bool
	readyCh chan struct{}
	scanned bool // an initial scan was made once (persisted)
	acks    map[peer.ID]*backupState

	barrier chan chan syncReply

	// problems are what keeps changes from being backed up: paths that
	// cannot be read, and (under "") the folder's capture failure. Read by
	// Status under mu.
	problems map[string]Problem
	changed  chan struct{} // closed and replaced when the folder's own problem changes
	// rulesProblem: the ignore file could not be used (the rules before
	// it stay in force); not cleared by reading the file as data
	rulesProblem *Problem

	// recentMoves are directories renamed in the last moveMemory: events
	// queued under a directory's old name before the watcher followed the
	// rename are looked up under the new name too.
	recentMoves []dirMove

	// owned by the run goroutine: files captured by appendFast, and files
	// to chunk in full at their next observation
	recheck    map[string]time.Time
	forceFull  map[string]bool
	retryDelay time.Duration        // after a failed capture; 0 once one succeeds
	g          *groupRead           // what the capture under way has read
	unsettled  []string             // paths the last capture gave back to the watcher
	tornSince  map[string]time.Time // files torn on every capture since then

	stats struct{ retries, torn atomic.Int64 }
}

type dirMove struct {
	from, to string
	at       time.Time
}

const moveMemory = 5 * time.Second

// movedPath translates p through the recent directory renames, or returns
// "" when none applies.
func (a *Agent) movedPath(p string) string {
	out := ""
	for _, m := range a.recentMoves {
		if p == m.from || strings.HasPrefix(p, m.from+"/") {
			p = m.to + p[len(m.from):]
			out = p
		}
	}
	return out
}

// backupState is what the source knows of one backup of a folder.
type backupState struct {
	Applied    uint64
	AppliedAt  time.Time
	AckedAt    time.Time
	Baseline   bool
	DoneBytes  int64
	TotalBytes int64
	Reset      bool            // told to re-baseline: its position was compacted away
	Errors     []wire.AckError // what the backup cannot apply, as it last said
	MoreErrors uint64
	Pending    uint64 // paths the backup is still bringing to this folder's state
}

// New makes the agent of a folder and loads its index. Nothing runs
// until Run. On error the journal is left to the caller.
func New(cfg Config) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Journal == nil || cfg.DB == nil || cfg.Watcher == nil || cfg.Topic == nil {
		return nil, fmt.Errorf("agent: folder %q: journal, database, watcher and topic are required", cfg.Folder)
	}
	a := &Agent{
		id: cfg.Folder, root: cfg.Root, rules: cfg.Rules, j: cfg.Journal, w: cfg.Watcher, topic: cfg.Topic,
		db: cfg.DB, rows: index.Agent(cfg.Folder), m: cfg.Metrics, capBytes: cfg.JournalMaxBytes, names: cfg.PeerName,
		retryEvery: cmp.Or(cfg.ProblemRetry, problemRetry), faults: cfg.ReadFaults, tornAfter: cmp.Or(cfg.TornProblemAfter, tornProblemAfter),
		log:      cfg.Logger.With("subsystem", "agent", "folder", cfg.Folder),
		files:    index.NewTree(),
		locs:     make(index.Locs),
		readyCh:  make(chan struct{}),
		acks:     make(map[peer.ID]*backupState),
		barrier:  make(chan chan syncReply),
		problems: make(map[string]Problem),
		changed:  make(chan struct{}),

		recheck:   make(map[string]time.Time),
		forceFull: make(map[string]bool),
		tornSince: make(map[string]time.Time),
	}
	if a.m == nil {
		a.m = NewMetrics(nil)
	}
	// the capture counters are there from the start, at zero
	a.m.readRetries.WithLabelValues(a.id)
	a.m.tornReads.WithLabelValues(a.id)
	a.m.groupRounds.WithLabelValues(a.id)
	a.m.groupsUneven.WithLabelValues(a.id)
	for _, b := range cfg.Backups {
		a.backups = append(a.backups, b)
		a.acks[b] = &backupState{}
	}
	if err := a.load(); err != nil {
		return nil, err
	}
	if err := a.newIndex(cfg.JournalExisted); err != nil {
		return nil, err
	}
	if err := a.reconcile(); err != nil {
		return nil, err
	}
	return a, nil
}

// newIndex handles an index that is new while the folder's journal is not
// (the index was lost, or rebuilt after it was damaged): the first scan
// only builds the index, so what changed after the journal's last record
// would never reach the backups. The journal skips one seq: every backup
// finds the records it needs gone and takes a new baseline, from the new
// index. A folder protected for the first time keeps seq 1 as its first
// record.
func (a *Agent) newIndex(existed bool) error {
	if a.scanned || (!existed && a.j.Last() == 0 && a.j.First() <= 1) {
		return nil
	}
	next := a.j.Last() + 2
	a.log.Warn("the folder's index is new but its journal is not (was the index lost or rebuilt?): its backups take a new baseline",
		"journal_next_seq", next)
	if err := a.j.SkipTo(next); err != nil {
		return fmt.Errorf("agent: folder %q: skip the journal to seq %d: %w", a.id, next, err)
	}
	a.seq = a.j.Last()
	return nil
}

// reconcile makes sure the journal covers what the index says was
// captured. The index records the journal seq it reflects; when the
// journal ends before it (records that had been made durable were lost
// from the disk, e.g. a segment cut short), those seqs are skipped, never
// issued again: a backup that needs them is told they are gone and takes
// a new baseline from the index, which holds their changes.
func (a *Agent) reconcile() error {
	var indexed uint64
	if err := a.db.View(func(tx *store.Tx) error { indexed = a.rows.Meta(tx).Seq; return nil }); err != nil {
		return fmt.Errorf("agent: index of folder %q: %w", a.id, err)
	}
	last := a.j.Last()
	if indexed <= last {
		return nil
	}
	a.log.Error("the journal lost records that the index reflects; backups that had not applied them take a new baseline",
		"lost_from", last+1, "lost_to", indexed)
	if err := a.j.SkipTo(indexed + 1); err != nil {
		return fmt.Errorf("agent: folder %q: skip the lost journal records %d-%d: %w", a.id, last+1, indexed, err)
	}
	a.seq = a.j.Last()
	return nil
}

func (a *Agent) peerName(p peer.ID) string {
	if a.names != nil {
		if n := a.names(p); n != "" {
			return n
		}
	}
	return p.String()
}

// load reads the folder's persisted index and backup positions.
func (a *Agent) load() error {
	return a.db.View(func(tx *store.Tx) error {
		files, locs, err := a.rows.Files().LoadTree(tx)
		if err != nil {
			return fmt.Errorf("agent: index of folder %q: %w", a.id, err)
		}
		a.files, a.locs = files, locs
		a.scanned = a.rows.Meta(tx).Scanned
		a.seq = a.j.Last()
		return a.rows.Backups(tx, func(k []byte, row index.BackupRow) error {
			pid, err := peer.IDFromBytes(k)
			if err != nil {
				return nil
			}
			st, ok := a.acks[pid]
			if !ok {
				return nil // no longer a designated backup
			}
			st.Applied, st.AppliedAt, st.AckedAt, st.Baseline = row.Applied, row.AppliedAt, row.AckedAt, row.Baseline
			return nil
		})
	})
}

// Close closes the folder's journal. Call it after Run returned.
func (a *Agent) Close() error { return a.j.Close() }

// ID is the folder ID.
func (a *Agent) ID() string { return a.id }

// Root is the folder's absolute path.
func (a *Agent) Root() string { return a.root }

// Ready is closed once the folder's first scan (or the rescan after a
// restart) is done and the agent captures live changes.
func (a *Agent) Ready() <-chan struct{} { return a.readyCh }

// Backups are the folder's designated backups.
func (a *Agent) Backups() []peer.ID { return a.backups }

// Run captures the folder's changes until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.w.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("watcher stopped", "err", err)
		}
	}()

	select {
	case <-a.w.Ready():
	case <-ctx.Done():
		return nil
	}
	// Changes made while the node was down are journaled by a full rescan
	// against the index (the very first scan only builds the index: it is
	// the snapshot backups start from).
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	scanStart := time.Now()
	a.log.Info("scanning folder", "path", a.root, "first", !a.scanned)
	for {
		err := a.capture(ctx, nil, true)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		a.failed(err, retry)
		select {
		case <-ctx.Done():
			return nil
		case <-retry.C:
		}
	}
	a.mu.Lock()
	a.ready = true
	close(a.readyCh)
	a.mu.Unlock()
	a.log.Info("folder protected", "path", a.root, "entries", a.files.Len(), "bytes", a.files.Bytes(), "seq", a.j.Last(),
		"scan", time.Since(scanStart).Round(time.Millisecond))

	hb := time.NewTicker(heartbeatEvery)
	defer hb.Stop()
	batches := a.w.Batches()
	poll := time.NewTicker(time.Hour)
	defer poll.Stop()
	lastProblemRetry := time.Now()
	run := func(paths []string, full bool) {
		if err := a.capture(ctx, paths, full); err != nil && ctx.Err() == nil {
			a.failed(err, retry)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case b, ok := <-batches:
			if !ok {
				// The watcher stopped (the folder root went away): fall
				// back to periodic rescans so nothing is missed silently.
				a.log.Error("watcher stopped; rescanning the folder every 10s", "path", a.root)
				a.setProblem("", errors.New("the folder is no longer watched (was it removed or moved?); rescanning every 10s"))
				batches = nil
				poll.Reset(10 * time.Second)
				continue
			}
			if slices.ContainsFunc(b.Paths, baseline.IsIgnoreFile) {
				a.reloadRules()
			}
			if a.failing() {
				run(nil, true) // the index was reloaded: everything is compared again
			} else {
				run(b.Paths, b.Rescan)
			}
		case <-poll.C:
			run(nil, true)
		case <-retry.C:
			run(nil, true)
		case reply := <-a.barrier:
			// Sync: a capture that failed is tried again now, so that a
			// disk that has space again is noticed at once.
			if a.failing() {
				run(nil, true)
			} else if ps := a.problemPaths(); len(ps) > 0 {
				// paths that could not be read are read again: a fixed
				// permission counts at once
				run(ps, false)
			}
			// Changes seen while a capture read (a file written again, a
			// directory whose entries changed after it was read) went
			// back to the watcher to settle; Sync covers every change
			// made before it, so they are captured now.
			for round := 0; len(a.unsettled) > 0 && !a.failing() && round < syncRounds; round++ {
				run(nil, false)
			}
			reply <- syncReply{head: a.j.Last(), err: a.syncProblem()}
		case now := <-hb.C:
			a.publish(ctx, wire.EncodeHeartbeat(a.j.Last()))
			a.compact()
			if due := a.dueRechecks(now); len(due) > 0 {
				run(due, false)
			}
			if now.Sub(lastProblemRetry) >= a.retryEvery {
				lastProblemRetry = now
				if ps := a.problemPaths(); len(ps) > 0 {
					run(ps, false)
				}
			}
		}
	}
}

// problemRetry is how often paths that could not be read are tried again
// (a change of their permissions is also seen by the watcher at once).
const problemRetry = 10 * time.Second

// failed handles a capture that could not be journaled: the in-memory
// index is reloaded from disk (it may have moved ahead of the journal),
// the folder reports the failure, and a full rescan is tried again after a
// delay that doubles up to 30s (or at once by Sync), so the change is
// captured later, not lost.
func (a *Agent) failed(err error, retry *time.Timer) {
	a.retryDelay = min(max(2*a.retryDelay, 500*time.Millisecond), 30*time.Second)
	if !a.failing() {
		a.log.Error("capture failed; changes stay pending and are captured again once the journal can be written",
			"err", err, "retry_in", a.retryDelay)
	} else {
		a.log.Debug("capture failed again", "err", err, "retry_in", a.retryDelay)
	}
	a.setProblem("", fmt.Errorf("changes cannot be captured: %w", err))
	a.m.captureErrors.WithLabelValues(a.id).Inc()
	a.mu.Lock()
	lerr := a.load()
	a.mu.Unlock()
	if lerr != nil {
		a.log.Error("reload index", "err", lerr)
	}
	retry.Reset(a.retryDelay)
}

// recovered clears the folder's capture failure after a good capture.
func (a *Agent) recovered() {
	if a.failing() {
		a.log.Info("captures work again; pending changes are captured", "journal_head", a.j.Last())
		a.clearProblem("")
	}
	a.retryDelay = 0
}

// failing reports whether the last capture failed.
func (a *Agent) failing() bool { return a.retryDelay > 0 }

// syncRounds bounds the captures a Sync makes of paths that keep changing
// while they are read.
const syncRounds = 8

// syncProblem is why the changes made before a Sync are not all captured:
// the folder's own problem, or paths that changed during every capture
// the Sync made.
func (a *Agent) syncProblem() error {
	if err := a.folderProblem(); err != nil {
		return err
	}
	if len(a.unsettled) > 0 {
		ps := slices.Clone(a.unsettled)
		slices.Sort(ps)
		return &UnsettledError{Folder: a.id, Paths: slices.Compact(ps), Reads: syncRounds + 1}
	}
	return nil
}

// UnsettledError is the error of a Sync that read paths again and again
// and found them changed each time (written all the time): their changes
// are not all captured.
type UnsettledError struct {
	Folder string
	Paths  []string
	Reads  int
}

// Message is what each path is reported with.
func (e *UnsettledError) Message() string {
	return fmt.Sprintf("changed again each time it was read (%d reads); not captured yet", e.Reads)
}

func (e *UnsettledError) Error() string {
	ps := e.Paths
	more := ""
	if len(ps) > 3 {
		more = fmt.Sprintf(" and %d more", len(ps)-3)
		ps = ps[:3]
	}
	q := make([]string, len(ps))
	for i, p := range ps {
		q[i] = strconv.Quote(p)
	}
	return fmt.Sprintf("%s%s: %s", strings.Join(q, ", "), more, e.Message())
}

type syncReply struct {
	head uint64
	err  error
}

// ErrNotCaptured wraps the error of a Sync whose changes could not be
// captured (the journal cannot be written, the folder cannot be read).
var ErrNotCaptured = errors.New("agent: changes not captured")

// Sync captures every change the watcher has pending and returns the
// journal head that covers them. Paths that changed again while they were
// read are read again until they hold still (syncRounds at most). It fails
// (wrapping ErrNotCaptured) when the changes cannot be captured (the
// journal cannot be written, the folder cannot be read, paths changed on
// every read), rather than return a head that does not cover them.
func (a *Agent) Sync(ctx context.Context) (uint64, error) {
	// Until the first scan is done there is nothing to flush; if it is
	// failing, say so instead of waiting.
	for ready := false; !ready; {
		a.mu.RLock()
		ready = a.ready
		changed := a.changed
		a.mu.RUnlock()
		if ready {
			break
		}
		if err := a.folderProblem(); err != nil {
			return 0, fmt.Errorf("%w: folder %q: %w", ErrNotCaptured, a.id, err)
		}
		select {
		case <-a.readyCh:
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if err := a.w.Flush(ctx); err != nil {
		return 0, err
	}
	reply := make(chan syncReply, 1)
	select {
	case a.barrier <- reply:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case r := <-reply:
		if r.err != nil {
			return r.head, fmt.Errorf("%w: folder %q: %w", ErrNotCaptured, a.id, r.err)
		}
		return r.head, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// reloadRules reads the folder's ignore file again after it changed; the
// watcher then follows the new rules and the folder is rescanned (newly
// ignored paths stop being backed up and are deleted on the backups, newly
// included ones are captured). A bad file is a problem of that file, and
// the rules in force stay.
func (a *Agent) reloadRules() {
	if a.rules == nil {
		return
	}
	if err := a.rules.Reload(); err != nil {
		a.ReportIgnoreFile(err)
		return
	}
	a.mu.Lock()
	a.rulesProblem = nil
	a.mu.Unlock()
	a.log.Info("ignore rules reloaded", "file", baseline.IgnoreFile)
	a.w.Resync()
}
