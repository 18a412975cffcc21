// Package index is the state of a folder as vigil knows it: the in-memory
// tree of entries (path -> entry with its chunk list, with a child index so
// a subtree is found without a scan), where each chunk can be read (Locs),
// and how both persist in the node's bbolt database.
//
// # bbolt layout
//
// Buckets are nested; each row below is key = value.
//
//	agent/<folder>/files/<path>            entry (baseline entry codec, with
//	                                       the source-local inode and device)
//	agent/<folder>/meta/scanned            0x01 once the first scan was made
//	agent/<folder>/meta/seq                8-byte big-endian journal seq the
//	                                       index reflects
//	agent/<folder>/acks/<backup peer ID>   applied seq (uvarint), applied time,
//	                                       acked time (signed varint unix nanos),
//	                                       in baseline (1 byte)
//	replica/<source>/<folder>/files/<path> entry, as for agent
//	replica/<source>/<folder>/meta/applied       8-byte BE seq applied and durable
//	replica/<source>/<folder>/meta/applied_at    8-byte BE unix nanos
//	replica/<source>/<folder>/meta/record_time   8-byte BE unix nanos (source time)
//	replica/<source>/<folder>/meta/baseline_done 0x01 once a baseline completed
//	replica/<source>/<folder>/meta/baseline_seq  8-byte BE snapshot seq
//
// History rows (history/<source>/<folder>/v/...) belong to package history.
//
// The tree is owned by one goroutine (the agent's or the replica's run
// loop) for writes; readers on other goroutines hold the owner's lock.
package index
