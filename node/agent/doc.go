// Package agent is the source role of a node: one Agent per protected
// folder keeps the folder's index, captures every change into the folder's
// journal, publishes the records on the folder's topic, and (through the
// Server) serves the folder's snapshot, chunks, journal and paths to its
// designated backups and records their acknowledgements.
//
// An Agent is built from explicit parts (Config): a journal.Log, the index
// database, a Watcher and a Publisher. Tests give it an in-memory journal
// that fails on command (journal.Faulty) and a topic of transport.Hub.
//
// # Capture
//
// The Watcher (package watch) hands settled paths to the agent's goroutine,
// which owns the folder's index (path -> entry with its chunk list,
// persisted in bbolt). A capture reads a group: the settled paths and
// every other path the watcher holds with changes (Take). It reads each
// path with its stamp (chunking only files whose size, mtime or inode
// changed; a read that raced a writer is read again, and a file that
// never reads whole is left out and read again later), checks the group
// as a whole (the paths read still have their stamps, nothing outside
// the group changed meanwhile; what moved is read again, for a few
// rounds), makes the observations consistent (a child seen below a parent
// seen gone is gone too), and diffs them against the index: renames are
// found by inode (a directory rename moves its index subtree and sends no
// data), then deletes, then puts and metadata changes; directory mtimes
// go last. The changes are appended to the journal as one group record
// (with the bytes of new chunks from the same reads), the index rows are
// saved with the journal seq they reflect, and the records are published.
// docs/capture.md states the guarantee and its bounds. On start the agent rescans
// the folder against its index; the very first scan only builds the index,
// which is the snapshot backups start from.
//
// A capture that cannot be journaled leaves the index as it was on disk and
// is retried; Sync reports the failure instead of a head that does not
// cover the change.
//
// # Goroutines and locks
//
// Run's goroutine owns the capture state (pending rescans, append-fast
// rechecks, recent directory moves, the group being read, torn files) and is the only writer of the index
// (files, locs, seq). Server goroutines (one per sync stream, plus its send
// queue) read the index under mu.RLock; the ack handler writes the backups'
// positions under mu. mu is taken before the journal's own locks (commit
// appends while holding it) and never while waiting on a channel.
package agent
