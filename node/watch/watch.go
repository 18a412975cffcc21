package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher defaults.
const (
	DefaultQuiet        = 10 * time.Millisecond
	DefaultMaxDelay     = time.Second
	DefaultPollInterval = 2 * time.Second
)

const (
	// watchDrainIdle is how long the event channel must stay empty before
	// a Flush considers the kernel queue drained.
	watchDrainIdle = 2 * time.Millisecond
	// watchDrainMax bounds a Flush's drain under a continuous event stream.
	watchDrainMax = 100 * time.Millisecond
	// watchMarkerMax bounds the wait for a Flush marker's event.
	watchMarkerMax = 5 * time.Second

	watchFixWatches   = "sysctl fs.inotify.max_user_watches=524288"
	watchFixInstances = "sysctl fs.inotify.max_user_instances=1024"
)

var (
	// ErrRunning is returned by Run when the watcher already runs
	// (or ran: a Watcher runs once).
	ErrRunning = errors.New("watch: watcher already started")
	// ErrStopped is returned by Flush once Run has returned.
	ErrStopped = errors.New("watch: watcher stopped")
	// errWatchNoInotify stands for a watch that cannot be added because
	// the watcher has no inotify instance (instance limit reached).
	errWatchNoInotify = errors.New("watch: no inotify instance")
)

// Error reports a watcher operation that failed on a path.
type Error struct {
	Op   string // "open", "watch"
	Path string // absolute path
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("watch: watcher %s %s: %v", e.Op, e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// pathFilter tells which paths of a folder are ignored; rel is relative to
// the folder root and slash-separated. baseline.Matcher satisfies it.
type pathFilter interface {
	Match(rel string, isDir bool) bool
}

// Options configures a Watcher. Zero values select the defaults.
type Options struct {
	// Quiet: a path is settled once no event touched it for this long;
	// default 10ms.
	Quiet time.Duration
	// MaxDelay: a path that never goes quiet is emitted anyway after this
	// long since its first pending event; default 1s.
	MaxDelay time.Duration
	// PollInterval is the period of the fallback scan for directories that
	// cannot be watched; default 2s.
	PollInterval time.Duration
	// Ignore selects paths that are neither watched nor emitted; nil
	// ignores nothing.
	Ignore pathFilter
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// MarkerDir, when set, is a private directory outside the folder that
	// the watcher also watches: Flush creates a marker file there and
	// waits for its event, so every event the kernel queued before the
	// Flush has been read (the inotify queue is ordered). Without it,
	// Flush waits until no event arrived for a short idle time.
	MarkerDir string
}

// Batch is a set of settled paths for the agent to examine.
type Batch struct {
	// Paths are relative, slash-separated, deduplicated and sorted. They
	// may name directories, deleted paths and both ends of a rename.
	Paths []string
	// Rescan: the whole folder must be rescanned (events were lost to an
	// inotify queue overflow, or the folder root itself was removed or
	// renamed). Paths may be empty.
	Rescan bool
}

// Watcher watches one folder recursively and emits settled batches of
// changed paths. All its state is owned by the goroutine that calls Run.
type Watcher struct {
	root     string // absolute, clean
	quiet    time.Duration
	maxDelay time.Duration
	poll     time.Duration
	ignore   pathFilter
	log      *slog.Logger

	out       chan Batch
	flushReq  chan chan struct{}
	takeReq   chan chan Batch
	requeue   chan []string
	resyncReq chan struct{}
	marker    string // MarkerDir, "" when not used
	markerN   int
	ready     chan struct{} // closed once the initial watches are in place
	done      chan struct{} // closed when Run returns
	started   atomic.Bool
	nPolled   atomic.Int64

	// Test hooks.
	newFS    func() (*fsnotify.Watcher, error)
	addWatch func(path string) error

	// Loop state, owned by Run's goroutine.
	fsw        *fsnotify.Watcher
	dirs       map[string]*watchDir          // tracked directories by rel path ("." = root)
	dirPaths   map[dirID]map[string]struct{} // watched directories' rel paths by inode (a moved one has two for a while)
	pending    map[string]watchPending
	timer      *time.Timer
	timerAt    time.Time // zero: timer not armed
	readySet   map[string]struct{}
	readyRes   bool
	readyBatch *Batch // cached result of buildBatch; nil when stale
	limitHit   bool   // a directory went to polling because of a limit
	instLimit  bool   // no inotify instance (EMFILE)
	limitWarn  bool   // the limit warning was logged
}

type watchDir struct {
	polled   bool
	fp       map[string]watchEntryFP // direct children, only when polled
	children map[string]struct{}     // rel paths of tracked subdirectories
	id       dirID                   // the directory's device and inode when watched
}

// dirID identifies a directory across renames.
type dirID struct{ dev, ino uint64 }

type watchEntryFP struct {
	size  int64
	mtime int64
	mode  fs.FileMode
}

type watchPending struct {
	first, last time.Time
}

// New returns a Watcher for the directory root. Nothing is watched
// until Run.
func New(root string, opts Options) (*Watcher, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, &Error{Op: "open", Path: root, Err: err}
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, &Error{Op: "open", Path: abs, Err: err}
	}
	if !fi.IsDir() {
		return nil, &Error{Op: "open", Path: abs, Err: syscall.ENOTDIR}
	}
	if opts.Quiet < 0 || opts.MaxDelay < 0 || opts.PollInterval < 0 {
		return nil, fmt.Errorf("watch: watcher %s: negative duration in options", abs)
	}
	if opts.Quiet == 0 {
		opts.Quiet = DefaultQuiet
	}
	if opts.MaxDelay == 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &Watcher{
		root:      abs,
		quiet:     opts.Quiet,
		maxDelay:  opts.MaxDelay,
		poll:      opts.PollInterval,
		ignore:    opts.Ignore,
		log:       opts.Logger.With("subsystem", "watcher", "root", abs),
		out:       make(chan Batch),
		flushReq:  make(chan chan struct{}),
		takeReq:   make(chan chan Batch),
		requeue:   make(chan []string),
		resyncReq: make(chan struct{}, 1),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
		newFS:     fsnotify.NewWatcher,
		marker:    opts.MarkerDir,
	}
	w.addWatch = func(p string) error {
		if w.fsw == nil {
			return errWatchNoInotify
		}
		return w.fsw.Add(p)
	}
	return w, nil
}

// Batches returns the channel of settled batches. It is unbuffered and is
// closed when Run returns.
func (w *Watcher) Batches() <-chan Batch { return w.out }

// Ready is closed once Run has put watches (or polling) on the root and
// every subdirectory, or when Run has returned. A full scan of the folder
// started after Ready misses no change: every later change is emitted.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Unwatched returns the number of directories on the polling fallback.
func (w *Watcher) Unwatched() int { return int(w.nPolled.Load()) }

// Flush emits everything pending now, ignoring the quiet period, and
// returns once that batch was received from Batches (at once when nothing
// was pending). Guarantee: a change made before Flush was called is in a
// batch received before Flush returns, provided the kernel has handed its
// event to the watcher within the drain window: Flush first reads events
// until none arrived for 2ms (at most 100ms under a continuous stream), and
// scans the directories on the polling fallback (there, a change that keeps
// size, mtime and mode of every entry is not seen). Flush waits for Run to
// have set up its watches, so it needs a running watcher and a consumer of
// Batches; it returns ErrStopped once Run has returned.
func (w *Watcher) Flush(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case w.flushReq <- reply:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		return ErrStopped
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		return ErrStopped
	}
}

// Take reads every event the kernel has queued (as Flush does: up to a
// marker event, or until the queue is idle) and returns every path that
// is pending or settled and not yet received, whether it settled or not,
// removing them from the watcher: they are the caller's to examine now.
// The agent calls it while it reads a group, to learn which paths changed
// meanwhile (see docs/capture.md). A Flush waiting for paths that Take
// returned is released.
func (w *Watcher) Take(ctx context.Context) (Batch, error) {
	reply := make(chan Batch, 1)
	select {
	case w.takeReq <- reply:
	case <-ctx.Done():
		return Batch{}, ctx.Err()
	case <-w.done:
		return Batch{}, ErrStopped
	}
	select {
	case b := <-reply:
		return b, nil
	case <-ctx.Done():
		return Batch{}, ctx.Err()
	case <-w.done:
		return Batch{}, ErrStopped
	}
}

// Requeue marks paths pending again as if an event had touched them now:
// they settle (and are emitted) after the quiet period, at the latest
// after MaxDelay. The agent gives back paths that changed after it read
// them, so they are read again.
func (w *Watcher) Requeue(paths []string) {
	if len(paths) == 0 {
		return
	}
	select {
	case w.requeue <- paths:
	case <-w.done:
	}
}

// Resync makes the watcher bring its watches in line with the tree (after
// the ignore rules changed: newly ignored directories are dropped, newly
// included ones watched) and emit Batch{Rescan: true}.
func (w *Watcher) Resync() {
	select {
	case w.resyncReq <- struct{}{}:
	default: // one is pending already
	}
}

// Run watches the root and every subdirectory that is not ignored, then
// emits batches until ctx is done. It returns nil when ctx is done, and an
// error when the root cannot be watched. It closes the fsnotify watcher and
// the Batches channel before returning. A Watcher runs once.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	readyOnce := false
	defer func() {
		if !readyOnce {
			close(w.ready)
		}
		close(w.out)
		close(w.done)
	}()

	fsw, err := w.newFS()
	switch {
	case err == nil:
		w.fsw = fsw
		defer w.fsw.Close()
	case watchIsInstanceLimit(err):
		w.instLimit = true
	default:
		return &Error{Op: "open", Path: w.root, Err: err}
	}

	w.dirs = make(map[string]*watchDir)
	w.dirPaths = make(map[dirID]map[string]struct{})
	w.pending = make(map[string]watchPending)
	w.readySet = make(map[string]struct{})
	w.timer = time.NewTimer(time.Hour)
	w.timer.Stop()
	defer w.timer.Stop()

	if err := w.track("."); err != nil {
		return &Error{Op: "watch", Path: w.root, Err: err}
	}
	w.addTree(".", false, time.Now())
	w.warnLimit()
	close(w.ready)
	readyOnce = true

	var evC chan fsnotify.Event
	var errC <-chan error
	if w.fsw != nil {
		stop := make(chan struct{})
		defer close(stop)
		evC, errC = w.fsw.Events, drainErrors(w.fsw.Errors, stop)
	}
	if w.marker != "" {
		if w.fsw == nil || os.MkdirAll(w.marker, 0o700) != nil || w.fsw.Add(w.marker) != nil {
			w.marker = "" // fall back to the idle drain
		} else {
			defer w.fsw.Remove(w.marker)
		}
	}
	awaitMarker := "" // marker file a Flush waits for
	var (
		ticker     *time.Ticker
		pollC      <-chan time.Time
		drainTimer = time.NewTimer(time.Hour)
		draining   bool
		drainStart time.Time
		drainWait  []chan struct{} // Flush calls waiting for the drain
		sendWait   []chan struct{} // Flush calls waiting for the next send
		takeWait   []chan Batch    // Take calls waiting for the drain
	)
	drainTimer.Stop()
	defer drainTimer.Stop()
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()

	for {
		if n := w.nPolled.Load(); n > 0 && ticker == nil {
			ticker = time.NewTicker(w.poll)
			pollC = ticker.C
		} else if n == 0 && ticker != nil {
			ticker.Stop()
			ticker, pollC = nil, nil
		}
		var outC chan<- Batch
		var b Batch
		if w.hasReady() {
			outC, b = w.out, w.buildBatch()
		}

		select {
		case <-ctx.Done():
			return nil

		case ev, ok := <-evC:
			if !ok {
				evC = nil
				continue
			}
			if w.marker != "" && filepath.Dir(ev.Name) == w.marker {
				if ev.Name == awaitMarker && ev.Has(fsnotify.Create) {
					// every event queued before the marker has been read
					awaitMarker = ""
					os.Remove(ev.Name)
					drainTimer.Reset(0)
				}
				continue
			}
			w.handleEvent(ev, time.Now())
			if draining && awaitMarker == "" && time.Since(drainStart) < watchDrainMax {
				drainTimer.Reset(watchDrainIdle)
			}

		case err, ok := <-errC:
			if !ok {
				errC = nil
				continue
			}
			w.handleError(err)

		case <-w.timer.C:
			w.timerAt = time.Time{}
			w.promoteDue(time.Now())

		case <-pollC:
			w.pollAll(time.Now())

		case <-w.resyncReq:
			w.resync()
			w.readyRes, w.readyBatch = true, nil

		case paths := <-w.requeue:
			now := time.Now()
			for _, p := range paths {
				w.markPending(p, now)
			}

		case reply := <-w.takeReq:
			takeWait = append(takeWait, reply)
			if draining {
				continue // the drain under way covers this Take too
			}
			draining, drainStart = true, time.Now()
			if awaitMarker != "" {
				continue
			}
			if w.marker != "" {
				w.markerN++
				name := filepath.Join(w.marker, fmt.Sprintf("flush-%d-%d", os.Getpid(), w.markerN))
				if err := os.WriteFile(name, nil, 0o600); err == nil {
					awaitMarker = name
					drainTimer.Reset(watchMarkerMax)
					continue
				}
			}
			drainTimer.Reset(watchDrainIdle)

		case reply := <-w.flushReq:
			if !draining {
				draining, drainStart = true, time.Now()
			}
			drainWait = append(drainWait, reply)
			if awaitMarker != "" {
				continue // the pending marker covers this Flush too
			}
			if w.marker != "" {
				w.markerN++
				name := filepath.Join(w.marker, fmt.Sprintf("flush-%d-%d", os.Getpid(), w.markerN))
				if err := os.WriteFile(name, nil, 0o600); err == nil {
					awaitMarker = name
					drainTimer.Reset(watchMarkerMax)
					continue
				}
			}
			drainTimer.Reset(watchDrainIdle)

		case <-drainTimer.C:
			if awaitMarker != "" {
				w.log.Warn("flush marker event not seen in time; flushing what is pending", "marker", awaitMarker)
				os.Remove(awaitMarker)
				awaitMarker = ""
			}
			draining = false
			w.pollAll(time.Now())
			w.promoteAll()
			if len(takeWait) > 0 {
				var b Batch
				if w.hasReady() {
					b = w.buildBatch()
				}
				clear(w.readySet)
				w.readyRes, w.readyBatch = false, nil
				for i, r := range takeWait {
					if i == 0 {
						r <- b
					} else {
						r <- Batch{}
					}
				}
				takeWait = nil
				// what the Flush calls waited for was taken
				for _, r := range sendWait {
					close(r)
				}
				sendWait = nil
			}
			if w.hasReady() {
				sendWait = append(sendWait, drainWait...)
			} else {
				for _, r := range drainWait {
					close(r)
				}
			}
			drainWait = nil

		case outC <- b:
			clear(w.readySet)
			w.readyRes, w.readyBatch = false, nil
			for _, r := range sendWait {
				close(r)
			}
			sendWait = nil
		}
	}
}

// drainErrors reads fsnotify's errors as soon as they come and hands them
// on, in order, through the returned channel, until stop is closed.
// fsnotify sends some errors while holding the lock that its Add and Remove
// take; if it waited for the event loop while the loop was in Add or
// Remove, both would wait for ever.
func drainErrors(src <-chan error, stop <-chan struct{}) <-chan error {
	out := make(chan error)
	go func() {
		var q []error
		for {
			var send chan<- error
			var head error
			if len(q) > 0 {
				send, head = out, q[0]
			}
			select {
			case err, ok := <-src:
				if !ok {
					src = nil // fsnotify closed; deliver what is queued
					continue
				}
				q = append(q, err)
			case send <- head:
				q = q[1:]
			case <-stop:
				return
			}
		}
	}()
	return out
}

// handleEvent records one fsnotify event.
func (w *Watcher) handleEvent(ev fsnotify.Event, now time.Time) {
	if ev.Name == w.root {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			w.log.Warn("protected folder was removed or renamed; it is no longer watched", "op", ev.Op.String())
			w.untrack(".")
			w.readyRes, w.readyBatch = true, nil
		}
		return
	}
	rel, ok := w.rel(ev.Name)
	if !ok {
		return
	}
	if ev.Has(fsnotify.Create) {
		w.handleCreate(rel, now)
		return
	}
	_, known := w.dirs[rel]
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		if known {
			w.untrack(rel)
		}
		if !w.ignored(rel, known) {
			w.markPending(rel, now)
		} else {
			w.entriesChanged(rel, now)
		}
		return
	}
	// Write, Chmod: the hot path.
	if p, ok := w.pending[rel]; ok {
		p.last = now
		w.pending[rel] = p
		w.arm(p.deadline(w.quiet, w.maxDelay))
		return
	}
	if !w.ignored(rel, known) {
		w.markPending(rel, now)
	}
}

// handleCreate handles a path that appeared: a new directory is watched
// and walked.
func (w *Watcher) handleCreate(rel string, now time.Time) {
	fi, err := os.Lstat(filepath.Join(w.root, filepath.FromSlash(rel)))
	if err != nil {
		_, known := w.dirs[rel]
		if !w.ignored(rel, known) {
			w.markPending(rel, now)
		} else {
			w.entriesChanged(rel, now)
		}
		return
	}
	isDir := fi.IsDir()
	if w.ignored(rel, isDir) {
		w.entriesChanged(rel, now)
		return
	}
	w.markPending(rel, now)
	if !isDir {
		return
	}
	if _, tracked := w.dirs[rel]; tracked {
		return
	}
	if _, parent := w.dirs[watchParent(rel)]; !parent {
		return // stale event from a watch on a directory that moved away
	}
	w.addTree(rel, true, now)
	w.warnLimit()
}

// entriesChanged marks the directory of rel pending when an ignored path
// rel was made, removed or renamed: the path is not reported, but the
// directory's mtime moved, and backups keep directory mtimes.
func (w *Watcher) entriesChanged(rel string, now time.Time) {
	if par := watchParent(rel); par != "." && !w.ignored(par, true) {
		w.markPending(par, now)
	}
}

// handleError handles an error from fsnotify.
func (w *Watcher) handleError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.log.Warn("inotify event queue overflowed; events were lost, the folder will be rescanned (raise fs.inotify.max_queued_events if this repeats)")
		w.resync()
		w.readyRes, w.readyBatch = true, nil
		return
	}
	w.log.Warn("watch error", "err", err)
}

func (w *Watcher) ignored(rel string, isDir bool) bool {
	return w.ignore != nil && w.ignore.Match(rel, isDir)
}

// rel converts an absolute path below the root to a slash-separated
// relative path ("." for the root itself).
func (w *Watcher) rel(p string) (string, bool) {
	if p == w.root {
		return ".", true
	}
	prefix := w.root
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	r, ok := strings.CutPrefix(p, prefix)
	if !ok || r == "" {
		return "", false
	}
	return filepath.ToSlash(r), true
}

func watchParent(rel string) string { return path.Dir(rel) }

func watchJoin(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}
