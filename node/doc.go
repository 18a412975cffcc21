// Package node wires one vigil node: an agent for every folder it protects,
// a replica for every folder it keeps for another node, lag accounting and
// the control endpoint.
//
// # Agent (source side)
//
// Per protected folder: a Watcher (recursive fsnotify, events aggregated per
// path until quiet) hands settled paths to the agent's goroutine, which owns
// the folder's index (path -> entry with its chunk list, persisted in bbolt).
// It stats each path (chunking only files whose size, mtime or inode
// changed), makes the observations consistent (a child seen below a parent
// seen gone is gone too), and diffs them against the index: renames are
// found by inode (a directory rename moves its index subtree and sends no
// data), then deletes, then puts and metadata changes; directory mtimes go
// last. The resulting changes are appended to the folder's journal in one
// group-committed batch, the index rows are saved, and each record is
// published on the folder's gossipsub topic. A failed journal append
// reloads the index from disk and schedules a full rescan, so no change is
// lost. On start the agent rescans the folder against its index; the very
// first scan only builds the index, which is the snapshot backups start from.
//
// # Change records (journal payloads)
//
// All integers are unsigned varints unless noted; strings and byte fields
// are a uvarint length then the bytes; a CID is its binary form with a
// uvarint length (0 = none).
//
//	record  = version(1 byte = 1) op(1 byte) path
//	op 1 put     = entry(baseline entry codec, chunks omitted, size 0)
//	               [file only: size base_root splice_start splice_removed
//	                n_added { cid size inline(1 byte) [data if inline=1] }]
//	op 2 delete  = (nothing more)
//	op 3 rename  = to
//	op 4 meta    = mode mtime(signed varint, unix nanos)
//
// A put of a file carries a splice of its chunk list (old chunks
// [start, start+removed) replaced by the added ones) and the content root of
// the version it applies on; the new chunks' bytes travel inline unless the
// folder already holds the chunk elsewhere or the record's inline budget
// (8 MiB) is spent, in which case the backup fetches them by CID.
//
// # Replica (target side)
//
// Per consented (source, folder): the replica's goroutine owns its index and
// applies records strictly in seq order. A record is applied only on the
// version it was made against (content root check); otherwise the path is
// repaired from the source's current state (path request) and records up
// to that state's seq are skipped for it. Files are written to a temporary
// name, fsynced and renamed into place; after a batch of records the
// touched directories get their mtimes back and are fsynced, then the index
// rows, the history versions and the applied seq are committed in one bbolt
// transaction, and the applied seq is acknowledged to the source.
//
// Pubsub is the fast path only: a record out of order waits 30 ms for the
// gap to fill, a heartbeat (every 500 ms) ahead of the applied seq waits
// 150 ms, and a (re)connect pulls at once; each of these pulls the missing
// range from the source's journal over a /vigil/sync stream. A range the
// source no longer has (journal compacted past the backup's position, or
// beyond its size cap) makes the replica re-baseline.
//
// Baseline: the replica asks for the source's snapshot (its index as of a
// journal seq S0), removes what the source does not have, makes directories
// and symlinks, then writes the files whose content it does not hold.
// Chunks it already has (anywhere in the replica, or earlier in this
// baseline) are copied locally; all others are fetched once over one
// pipelined stream (batches of 256 CIDs, each answered by one frame, 16
// batches in flight; reading, verifying against the CIDs and writing run
// in separate goroutines). Files go to staged temporary files (chunks written
// with writev, small files staged by a small pool), are made durable with one
// syncfs per group (256 MiB or 2048 files) and renamed into place, in the
// background while the next group is staged; each group's index rows are
// committed after that, so a restart resumes without fetching a chunk again.
// Records after S0 are applied afterwards.
//
// # Stream messages (/vigil/sync/1.0.0, /vigil/ack/1.0.0)
//
// Frames are mesh frames (uvarint length, type byte, payload). Requests
// come from a target; each names a folder, and only the folder's designated
// backups are served (others get an error frame).
//
//	0x01 snapshot request   folder
//	     -> 0x81 head(seq, entries, total bytes), 0x82 entries(count, entry...)..., 0x8E end(seq)
//	0x02 chunks request     folder, count, CID...  (pipelined; answered in order)
//	     -> 0x83 chunks: per CID in order, 0x01 uvarint(len) bytes, or 0x00
//	        (no longer available)
//	0x03 journal request    folder, from seq
//	     -> 0x85 record(seq, unix nanos (signed), payload)..., 0x8E end(head seq)
//	        or 0x86 compacted(first retained seq)
//	0x04 path request       folder, path
//	     -> 0x87 head(seq), 0x82 entries..., 0x8E end(seq)
//	0x8F error              message
//	0x10 ack (ack stream)   folder, applied seq, in baseline(1 byte),
//	                        baseline done bytes, baseline total bytes,
//	                        applied time (signed unix nanos)
//
// # Pubsub messages (topic /vigil/folder/1/<source>/<folder>)
//
//	0x04 records    consecutive records, each uvarint length + (seq, unix
//	                nanos (signed), payload); up to 256 KiB per message
//	0x01 record     one record: seq, unix nanos (signed), payload
//	0x02 announce   seq, unix nanos: a record too large for pubsub, pull it
//	0x03 heartbeat  head seq (every 500 ms)
package node
