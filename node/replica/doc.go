// Package replica is the target role of a node: one Replica per folder it
// keeps for a source holds the replicated tree, its index and history, and
// its position in the source's journal.
//
// A Replica is built from explicit parts (Config): the index database, a
// data directory and a Transport (the libp2p mesh, or a transport.Hub in
// tests, which can partition and heal links).
//
// # Baseline
//
// The replica asks for the source's snapshot (its index as of a journal
// seq S0), removes what the source does not have, makes directories and
// symlinks, then copies the files whose content it does not hold (see
// copy.go for the stages). Records after S0 are applied afterwards.
//
// # Live records
//
// Records apply strictly in seq order. A record is applied only on the
// version it was made against (content root check); otherwise the path is
// repaired from the source's current state (path request) and records up
// to that state's seq are skipped for it. Files are written to a temporary
// name, fsynced and renamed into place; after a batch of records the
// touched directories get their mtimes back and are fsynced, then the index
// rows, the history versions and the applied seq are committed in one bbolt
// transaction, and the applied seq is acknowledged to the source.
//
// Pubsub is the fast path only: a record out of order waits 30 ms for the
// gap to fill, a heartbeat ahead of the applied seq waits 150 ms, and a
// (re)connect pulls at once; each of these pulls the missing range from the
// source's journal over a sync stream. A range the source no longer has
// makes the replica take a new baseline.
//
// # Goroutines and locks
//
// Run's goroutine owns the tree, the chunk locations, the out-of-order
// buffer and the repair marks; the applier and the baseline copier run on
// it. Its helpers: the topic reader (forwards messages), the ack loop
// (reads Status), the fetch stream's reader, verifier and writer, and the
// copier's small-file stagers and group committer (each touches only the
// group it was given). mu guards the reported Status only and is a leaf.
package replica
