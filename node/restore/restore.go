package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vigil-mesh/vigil/internal/fsutil"
	"github.com/vigil-mesh/vigil/node/history"
	"github.com/vigil-mesh/vigil/node/index"

	"github.com/vigil-mesh/vigil/baseline"
	"github.com/vigil-mesh/vigil/store"
)

// Errors of restore, verify and history. The errors returned carry a
// message naming the folder, source, path or directory at fault and match
// these sentinels with errors.Is.
var (
	// ErrNoReplica: this node keeps no such folder of that source.
	ErrNoReplica = errors.New("restore: no such replica on this node")
	// ErrNotEmpty: the restore target directory is not empty (and Force
	// was not given).
	ErrNotEmpty = errors.New("restore: restore target is not empty")
	// ErrBeforeFirst: the point asked for is before the oldest version kept.
	ErrBeforeFirst = errors.New("restore: no backup at or before that point")
	// ErrAfterNewest: the point asked for is after the newest backed-up
	// state (a seq not applied yet, a time in the future).
	ErrAfterNewest = errors.New("restore: no backup at that point yet")
	// ErrNoSuchPath: a path asked for never existed in the backup, or did
	// not exist at the point asked for.
	ErrNoSuchPath = errors.New("restore: no such path in the backup")
	// ErrBadRequest: the request itself is malformed (e.g. both At and Seq).
	ErrBadRequest = errors.New("restore: bad request")
	// ErrIncomplete: the restore wrote everything it could, but some files
	// could not be restored intact (see IncompleteError).
	ErrIncomplete = errors.New("restore: some files could not be restored")
)

// userError is an error with a complete message for the user that matches
// one of the sentinels above.
type userError struct {
	kind error
	msg  string
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.kind }

func userErrorf(kind error, format string, args ...any) error {
	return &userError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// RestoreRequest asks for a folder (or some of its paths) of a source as it
// was at a time or journal sequence number, written into To.
type RestoreRequest struct {
	Source string    `json:"source"`            // peer ID or peer name from the config
	Folder string    `json:"folder"`            // folder ID
	To     string    `json:"to"`                // target directory (created if missing)
	At     time.Time `json:"at,omitzero"`       // the state at this time (zero: see Seq)
	Seq    uint64    `json:"seq,omitempty"`     // the state after this seq (0 and zero At: the newest state)
	Paths  []string  `json:"paths,omitempty"`   // restrict to these paths and their subtrees (empty: all)
	Force  bool      `json:"force,omitempty"`   // restore into a non-empty To
	DryRun bool      `json:"dry_run,omitempty"` // only say what would be restored; write nothing
}

// RestoreResult describes a finished restore (or, for a dry run, what a
// restore would write).
type RestoreResult struct {
	Source       string    `json:"source"`
	SourceName   string    `json:"source_name"`
	Folder       string    `json:"folder"`
	To           string    `json:"to"`
	Seq          uint64    `json:"seq"`  // newest journal seq in the restored state
	Time         time.Time `json:"time"` // source time of that change
	DryRun       bool      `json:"dry_run,omitempty"`
	Files        int       `json:"files"`
	Dirs         int       `json:"dirs"`
	Symlinks     int       `json:"symlinks"`
	Bytes        int64     `json:"bytes"`         // file content written
	HistoryBytes int64     `json:"history_bytes"` // of which read from the history chunk store
	// Failed lists the files that could not be restored intact (a real
	// restore then fails with ErrIncomplete); for a dry run, the files
	// whose content is known now to be found nowhere. Never nil.
	Failed []FailedFile `json:"failed"`
	// Entries is, for a dry run, every path that would be written, in
	// path order.
	Entries []PlannedEntry `json:"entries,omitempty"`
}

// FailedFile is a file a restore could not write intact. Nothing of it is
// written: the target keeps what it had at that path, if anything.
type FailedFile struct {
	Path  string `json:"path"`
	Chunk string `json:"chunk,omitempty"` // the first chunk found nowhere intact
	Error string `json:"error"`
}

// PlannedEntry is a path a dry run would restore.
type PlannedEntry struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"` // "file", "dir" or "symlink"
	Size   int64  `json:"size"`
	Target string `json:"target,omitempty"` // of a symlink
}

// IncompleteError is the error of a restore that wrote every file it
// could but not all of them; it matches ErrIncomplete. Failed names each
// file left out, and the chunk that was found nowhere intact.
type IncompleteError struct {
	Label    string // "docs from laptop"
	Restored int    // files restored
	Failed   []FailedFile
	DryRun   bool // a dry run found them: nothing was written
}

// maxNamed bounds the paths an IncompleteError names in its message; the
// result lists all of them.
const maxNamed = 20

func (e *IncompleteError) Error() string {
	var b strings.Builder
	if e.DryRun {
		fmt.Fprintf(&b, "%d of %d files of %s would not be restored, their content is found nowhere: ",
			len(e.Failed), len(e.Failed)+e.Restored, e.Label)
	} else {
		fmt.Fprintf(&b, "%d of %d files of %s could not be restored intact (the rest is restored): ",
			len(e.Failed), len(e.Failed)+e.Restored, e.Label)
	}
	for i, f := range e.Failed {
		if i == maxNamed {
			fmt.Fprintf(&b, "; and %d more", len(e.Failed)-maxNamed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Path)
		if f.Chunk != "" {
			fmt.Fprintf(&b, " (chunk %s)", f.Chunk)
		}
	}
	return b.String()
}

func (e *IncompleteError) Unwrap() error { return ErrIncomplete }

// Replica is what restore, verify and history read of one replica: from a
// running node or from a data directory opened offline.
type Replica struct {
	DB         *store.DB
	History    *history.Store
	Root       string // the replica tree
	Source     string // the source's peer ID
	SourceName string
	Folder     string
	Rows       index.ReplicaRows
	DataDir    string
	Log        *slog.Logger
	Retained   bool // history is kept (retention > 0)
	// Live is the running replica, nil offline: verify compares with the
	// source's snapshot through it.
	Live Live
}

// Live is the part of a running replica that verify uses.
type Live interface {
	// SourceSnapshot returns the source's current entries when the
	// replica is live and caught up, or an error saying why not.
	SourceSnapshot(ctx context.Context) (uint64, []baseline.Entry, error)
}

func (d *Replica) label() string { return d.Folder + " from " + d.SourceName }

// MatchSource reports whether s names the peer with that ID or name.
func MatchSource(s, id, name string) bool {
	return s == id || (name != "" && s == name)
}

// Spec names one replica a node keeps, as its config says.
type Spec struct {
	Source     string // peer ID
	SourceName string
	Folder     string
	Retention  time.Duration
}

// Select returns the specs of source (a peer ID or name) and folder (""
// matches any). It fails with ErrNoReplica when a source or folder was
// given and nothing matches; cfgFile names the config in that message.
func Select(specs []Spec, source, folder, cfgFile string) ([]Spec, error) {
	var out []Spec
	for _, s := range specs {
		if (source == "" || MatchSource(source, s.Source, s.SourceName)) && (folder == "" || s.Folder == folder) {
			out = append(out, s)
		}
	}
	if len(out) == 0 && (source != "" || folder != "") {
		return nil, NoReplica(source, folder, cfgFile)
	}
	return out, nil
}

// NoReplica is the ErrNoReplica error for source and folder.
func NoReplica(source, folder, cfgFile string) error {
	return userErrorf(ErrNoReplica, "this node keeps no folder %q of %q (see backup_for in %s)", folder, source, cfgFile)
}

// EachOffline opens the index database of a node that is not running (it
// fails with store.ErrLocked if a node holds it) and calls fn for each
// replica of specs; the replicas log to log (nil: nowhere).
func EachOffline(dataDir string, specs []Spec, log *slog.Logger, fn func(*Replica) error) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := filepath.Join(dataDir, "index.db")
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("restore: no index in data_dir %s (has this node ever run?): %w", dataDir, err)
	}
	db, err := store.OpenDB(p)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range specs {
		h, err := history.Open(dataDir, s.Source, s.Folder)
		if err != nil {
			return err
		}
		d := &Replica{DB: db, History: h, Root: filepath.Join(dataDir, "replicas", s.Source, s.Folder),
			Source: s.Source, SourceName: s.SourceName, Folder: s.Folder, Rows: index.Replica(s.Source, s.Folder),
			DataDir: dataDir, Log: log.With("subsystem", "restore", "source", s.SourceName, "folder", s.Folder),
			Retained: s.Retention > 0}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// cleanPaths normalises the paths of a request ("./a/" -> "a"); "." or ""
// means the whole folder (nil).
func cleanPaths(ps []string) ([]string, error) {
	var out []string
	for _, p := range ps {
		c := path.Clean(strings.TrimPrefix(filepath.ToSlash(p), "/"))
		if c == "." {
			return nil, nil
		}
		if c == ".." || strings.HasPrefix(c, "../") {
			return nil, userErrorf(ErrBadRequest, "path %q: leaves the folder", p)
		}
		out = append(out, c)
	}
	return out, nil
}

func under(p, root string) bool { return p == root || strings.HasPrefix(p, root+"/") }

// pointInTime returns the state of every path at (at, seq) from the
// version rows, the oldest version kept (time and seq) and the newest
// version included (seq, time).
type pitState struct {
	state     map[string]*baseline.Entry
	firstTime time.Time
	firstSeq  uint64 // a baseline of an empty journal is at seq 0
	lastSeq   uint64
	lastTime  time.Time
	rows      int
}

func pointInTime(tx *store.Tx, h *history.Store, at time.Time, seq uint64) (*pitState, error) {
	ps := &pitState{}
	vs := make(map[string]*history.Version)
	err := h.ForEach(tx, func(ver history.Version) error {
		if ps.rows == 0 || ver.Time.Before(ps.firstTime) {
			ps.firstTime = ver.Time
		}
		if ps.rows == 0 || ver.Seq < ps.firstSeq {
			ps.firstSeq = ver.Seq
		}
		ps.rows++
		if seq != 0 && ver.Seq > seq {
			return nil
		}
		if !at.IsZero() && ver.Time.After(at) {
			return nil
		}
		if ver.Seq > ps.lastSeq {
			ps.lastSeq, ps.lastTime = ver.Seq, ver.Time
		}
		vs[ver.Path] = &ver
		return nil
	})
	ps.state = make(map[string]*baseline.Entry, len(vs))
	for p, v := range vs {
		if v.Entry != nil {
			v.Entry.Path = p
			ps.state[p] = v.Entry
		}
	}
	return ps, err
}

// everExisted reports whether p (or anything below it) has a version row
// or an entry in the current index.
func everExisted(tx *store.Tx, d *Replica, p string) bool {
	files := d.Rows.Files()
	return d.History.HasPath(tx, p) || files.Has(tx, p) || files.HasBelow(tx, p)
}

// plan is what a restore writes: the entries of the state asked for, in
// path order, and the replica's current index (where chunks are read).
type plan struct {
	ents []*baseline.Entry
	cur  map[string]*baseline.Entry
}

// makePlan reads the state asked for by req in one read transaction and
// fills res's Seq and Time.
func makePlan(d *Replica, req RestoreRequest, paths []string, res *RestoreResult) (*plan, error) {
	pl := &plan{cur: make(map[string]*baseline.Entry)}
	err := d.DB.View(func(tx *store.Tx) error {
		err := d.Rows.Files().Load(tx, func(e *baseline.Entry) error {
			pl.cur[e.Path] = e
			return nil
		})
		if err != nil {
			return fmt.Errorf("restore: index of replica %s: %w", d.label(), err)
		}
		meta := d.Rows.Meta(tx)
		applied := meta.Applied
		if applied == 0 && len(pl.cur) == 0 && !meta.BaselineOK {
			return userErrorf(ErrBeforeFirst, "no backup of %s on this node yet (baseline not done)", d.label())
		}
		newestTime := meta.RecordTime
		if newestTime.IsZero() {
			newestTime = meta.AppliedAt
		}
		newestTime = newestTime.UTC()
		newest := fmt.Sprintf("seq %d", applied)
		if !newestTime.IsZero() {
			newest += fmt.Sprintf(" (%s)", newestTime.Format(time.RFC3339))
		}
		switch {
		case req.Seq > applied:
			return userErrorf(ErrAfterNewest, "the newest backed-up state of %s is %s", d.label(), newest)
		case !req.At.IsZero() && req.At.After(time.Now()):
			return userErrorf(ErrAfterNewest, "%s is in the future: the newest backed-up state of %s is %s",
				req.At.Format(time.RFC3339Nano), d.label(), newest)
		}
		state := pl.cur
		if req.At.IsZero() && (req.Seq == 0 || req.Seq == applied) {
			res.Seq, res.Time = applied, newestTime
		} else {
			ps, err := pointInTime(tx, d.History, req.At, req.Seq)
			if err != nil {
				return err
			}
			if ps.rows == 0 {
				if !d.Retained {
					return userErrorf(ErrBeforeFirst, "no history of %s is kept on this node (retention is 0): only the newest state can be restored", d.label())
				}
				return userErrorf(ErrBeforeFirst, "no history of %s on this node yet", d.label())
			}
			if !req.At.IsZero() && req.At.Before(ps.firstTime) {
				return userErrorf(ErrBeforeFirst, "no backup of %s before %s", d.label(), ps.firstTime.UTC().Format(time.RFC3339Nano))
			}
			if req.Seq != 0 && req.Seq < ps.firstSeq {
				return userErrorf(ErrBeforeFirst, "no backup of %s at or before seq %d (the oldest kept is seq %d)", d.label(), req.Seq, ps.firstSeq)
			}
			state, res.Seq, res.Time = ps.state, ps.lastSeq, ps.lastTime.UTC()
		}
		for _, p := range paths {
			if !everExisted(tx, d, p) {
				return userErrorf(ErrNoSuchPath, "path %q never existed in the backup of %s", p, d.label())
			}
		}
		for p, e := range state {
			if paths == nil {
				pl.ents = append(pl.ents, e)
				continue
			}
			for _, q := range paths {
				if under(p, q) || under(q, p) && e.Kind == baseline.KindDir {
					pl.ents = append(pl.ents, e)
					break
				}
			}
		}
		for _, q := range paths {
			if state[q] == nil {
				found := false
				for p := range state {
					if under(p, q) {
						found = true
						break
					}
				}
				if !found {
					return userErrorf(ErrNoSuchPath, "path %q did not exist in the backup of %s as of seq %d (%s)",
						q, d.label(), res.Seq, res.Time.Format(time.RFC3339Nano))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(pl.ents, func(i, j int) bool { return pl.ents[i].Path < pl.ents[j].Path })
	return pl, nil
}

// Restore writes the state of replica d asked for by req into req.To.
// progress, if not nil, is called with the content bytes written so far
// and the total (from several goroutines, one call at a time).
//
// Every chunk written is verified against its CID: it is read from the
// replica file that holds it (the replica may change meanwhile), else from
// another replica file holding the same chunk, else from the history chunk
// store. A file that cannot be written intact is left out and named in
// res.Failed; the others are restored and the error is an
// *IncompleteError (ErrIncomplete). Any other failure (the target cannot
// be written, ctx ends) undoes the restore: a To it created is removed,
// and in an existing To every path it wrote is put back as it was (see
// docs/restore.md). With req.DryRun nothing is written: res says what
// would be.
func Restore(ctx context.Context, d *Replica, req RestoreRequest, progress func(done, total int64)) (res RestoreResult, err error) {
	res = RestoreResult{Source: d.Source, SourceName: d.SourceName, Folder: d.Folder, DryRun: req.DryRun, Failed: []FailedFile{}}
	if !req.At.IsZero() && req.Seq != 0 {
		return res, userErrorf(ErrBadRequest, "restore: give a time or a seq, not both")
	}
	if req.To == "" {
		return res, userErrorf(ErrBadRequest, "restore: no target directory")
	}
	to, err := filepath.Abs(req.To)
	if err != nil {
		return res, fmt.Errorf("restore: restore target %s: %w", req.To, err)
	}
	res.To = to
	if dd, err := filepath.Abs(d.DataDir); err == nil && (fsutil.Overlap(to, dd)) {
		return res, userErrorf(ErrBadRequest, "restore target %s overlaps the node's data_dir %s", to, dd)
	}
	paths, err := cleanPaths(req.Paths)
	if err != nil {
		return res, err
	}
	pl, err := makePlan(d, req, paths, &res)
	if err != nil {
		return res, err
	}
	var total int64
	for _, e := range pl.ents {
		if e.Kind == baseline.KindFile {
			total += e.Size
		}
	}

	var in *os.Root
	if fi, err := os.Stat(d.Root); err == nil && fi.IsDir() {
		if in, err = os.OpenRoot(d.Root); err != nil {
			return res, fmt.Errorf("restore: replica %s: %w", d.label(), err)
		}
		defer in.Close()
	}
	defer d.History.ReadLock()()
	src := newChunkSource(d, in, pl.cur)

	if req.DryRun {
		if err := checkTarget(to, req.Force); err != nil {
			return res, err
		}
		dryRun(pl, src, &res)
		if len(res.Failed) > 0 {
			return res, &IncompleteError{Label: d.label(), Restored: res.Files, Failed: res.Failed, DryRun: true}
		}
		return res, nil
	}

	tg, err := openTarget(to, req.Force)
	if err != nil {
		return res, err
	}
	rs := &restorer{d: d, src: src, tg: tg, total: total, progress: progress}
	if err := rs.run(ctx, pl.ents, &res); err != nil {
		if rerr := tg.rollback(); rerr != nil {
			d.Log.Error("restore failed and could not be fully undone", "to", to, "err", err, "undo_err", rerr)
			err = fmt.Errorf("%w (undoing it failed too: %v)", err, rerr)
		} else {
			d.Log.Info("restore failed and was undone", "to", to, "err", err)
		}
		return res, err
	}
	if err := tg.commit(); err != nil {
		d.Log.Warn("restore: could not remove what the restore replaced", "to", to, "err", err)
	}
	res.HistoryBytes = src.histBytes.Load()
	if progress != nil {
		progress(total, total)
	}
	d.Log.Info("restored", "to", to, "seq", res.Seq, "files", res.Files, "dirs", res.Dirs, "symlinks", res.Symlinks,
		"bytes", res.Bytes, "history_bytes", res.HistoryBytes, "failed", len(res.Failed))
	if len(res.Failed) > 0 {
		return res, &IncompleteError{Label: d.label(), Restored: res.Files, Failed: res.Failed}
	}
	return res, nil
}

// dryRun fills res with what a restore of pl would write, and the files
// whose content is known now to be found nowhere (nothing is read: a
// damaged copy shows only when a restore verifies it).
func dryRun(pl *plan, src *chunkSource, res *RestoreResult) {
	res.Entries = make([]PlannedEntry, 0, len(pl.ents))
	for _, e := range pl.ents {
		pe := PlannedEntry{Path: e.Path, Kind: e.Kind.String()}
		switch e.Kind {
		case baseline.KindDir:
			res.Dirs++
		case baseline.KindSymlink:
			res.Symlinks++
			pe.Target = e.Target
		case baseline.KindFile:
			pe.Size = e.Size
			if c, ok := src.missing(e); ok {
				res.Failed = append(res.Failed, FailedFile{Path: e.Path, Chunk: c.String(),
					Error: fmt.Sprintf("chunk %s is found neither in the replica nor in the history store", c)})
				continue
			}
			res.Files++
			res.Bytes += e.Size
		}
		res.Entries = append(res.Entries, pe)
	}
}

// UserError returns an error with message msg that matches kind (one of
// the sentinels above) with errors.Is; the control client uses it to turn
// an error answer back into the error the node returned.
func UserError(kind error, msg string) error { return &userError{kind: kind, msg: msg} }
