package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-mesh/vigil/journal"
	"github.com/vigil-mesh/vigil/node"
	"github.com/vigil-mesh/vigil/node/config"
	"github.com/vigil-mesh/vigil/store"
)

// `vigil repair --rebuild-index`: a way back from a damaged index.db. The
// index holds nothing that cannot be had again: a protected folder's
// entries are its files (the first scan after the rebuild makes them
// again), a replica's entries are its source's snapshot (the replica takes
// a new baseline, adopting by hash the files it already holds). What is
// lost is history: the restore points of the replicas before the rebuild.
//
// A replica's new baseline writes what its source has, but removes only
// what its index knows: a file the source deleted while the index was
// being rebuilt stays in the replica until `vigil repair` (or the
// background scrub) finds it extra; the command says so.
//
// One thing must be done before the node starts again: a source whose
// index is new cannot tell its backups what changed while it was down (its
// first scan only builds the index), so each protected folder's journal
// skips one seq (journal SkipTo): every backup then finds the records it
// needs gone and takes a new baseline, which brings it to the folder as
// it is now. The journals are skipped before the index is set aside, so a
// rebuild cut short and run again leaves no backup behind.

// rebuildReport is what `vigil repair --rebuild-index --json` prints.
type rebuildReport struct {
	Index    string           `json:"index"`
	SetAside string           `json:"set_aside"` // "" when there was no index
	Folders  []rebuildFolder  `json:"folders"`
	Replicas []rebuildReplica `json:"replicas"`
}

// rebuildFolder is a protected folder whose backups re-baseline.
type rebuildFolder struct {
	Folder         string `json:"folder"`
	JournalNextSeq uint64 `json:"journal_next_seq"` // 0: the folder has no journal yet
}

// rebuildReplica is a replica that re-baselines from its source.
type rebuildReplica struct {
	Source     string `json:"source"`
	SourceName string `json:"source_name"`
	Folder     string `json:"folder"`
}

func runRebuildIndex(g *globals, stdout io.Writer, asJSON bool) error {
	cfg, err := g.LoadConfig()
	if err != nil {
		return err
	}
	rep := rebuildReport{Index: node.IndexPath(cfg), Folders: []rebuildFolder{}, Replicas: []rebuildReplica{}}
	held, err := store.HoldDB(rep.Index)
	switch {
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("repair: --rebuild-index: %s is in use by a running node (or another vigil command): stop the node first", rep.Index)
	case errors.Is(err, fs.ErrNotExist):
		held = nil // nothing to set aside; a new index is made all the same
	case err != nil:
		return fmt.Errorf("repair: --rebuild-index: %w", err)
	}
	if held != nil {
		defer held.Release()
	}
	for _, f := range cfg.Folders {
		next, err := skipJournal(g, cfg, f.ID)
		if err != nil {
			return err
		}
		rep.Folders = append(rep.Folders, rebuildFolder{Folder: f.ID, JournalNextSeq: next})
	}
	for _, bf := range cfg.BackupFor {
		pc, _ := cfg.PeerByName(bf.Peer)
		for _, f := range bf.Folders {
			rep.Replicas = append(rep.Replicas, rebuildReplica{Source: pc.ID, SourceName: bf.Peer, Folder: f})
		}
	}
	if held != nil {
		if rep.SetAside, err = held.SetAside(time.Now()); err != nil {
			return fmt.Errorf("repair: --rebuild-index: %w", err)
		}
	}
	db, err := store.OpenDB(rep.Index)
	if err != nil {
		return fmt.Errorf("repair: --rebuild-index: new index: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("repair: --rebuild-index: new index: %w", err)
	}

	var buf bytes.Buffer
	if asJSON {
		if err := writeJSON(&buf, rep); err != nil {
			return err
		}
	} else {
		writeRebuildReport(&buf, rep)
	}
	_, err = stdout.Write(buf.Bytes())
	return err
}

// skipJournal makes the journal of folder skip one seq, so that its
// backups take a new baseline, and returns the seq its next record gets
// (0 when the folder has no journal: it never ran, no backup has anything).
func skipJournal(g *globals, cfg *config.Config, folder string) (uint64, error) {
	dir := filepath.Join(cfg.DataPath(), "journal", folder)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	// the node's segment size (see node.newAgent)
	seg := min(max(cfg.Node.JournalMaxBytes/8, 4<<10), journal.DefaultSegmentSize)
	j, err := journal.Open(dir, journal.WithSegmentSize(seg), journal.WithLogger(commandLogger(g)))
	if err != nil {
		return 0, fmt.Errorf("repair: --rebuild-index: folder %q: journal %s: %w", folder, dir, err)
	}
	next := j.Last() + 2
	err = j.SkipTo(next)
	if cerr := j.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("repair: --rebuild-index: folder %q: journal %s: skip to seq %d: %w", folder, dir, next, err)
	}
	return next, nil
}

func writeRebuildReport(w io.Writer, rep rebuildReport) {
	if rep.SetAside != "" {
		fmt.Fprintf(w, "index %s set aside as %s; a new, empty index is in its place\n", rep.Index, rep.SetAside)
	} else {
		fmt.Fprintf(w, "no index at %s; a new, empty one is made\n", rep.Index)
	}
	for _, f := range rep.Folders {
		if f.JournalNextSeq == 0 {
			fmt.Fprintf(w, "folder %s: scanned again at the next start\n", f.Folder)
			continue
		}
		fmt.Fprintf(w, "folder %s: scanned again at the next start; its journal goes on at seq %d, so its backups take a new baseline (fetching only what they lack)\n",
			f.Folder, f.JournalNextSeq)
	}
	for _, r := range rep.Replicas {
		fmt.Fprintf(w, "replica %s/%s: takes a new baseline from %s at the next start (files it holds are adopted by their hash, not fetched); its restore points from before now are gone\n",
			r.SourceName, r.Folder, r.SourceName)
	}
	fmt.Fprintln(w, "start the node (`vigil run`); `vigil lag --wait-synced 10m` tells when it is done")
	if len(rep.Replicas) > 0 {
		fmt.Fprintln(w, "then run `vigil repair`: it removes from the replicas the files their sources deleted meanwhile, which the new index does not know")
	}
}
