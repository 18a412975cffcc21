// Package wire is the one specification of what vigil nodes say to each
// other: the change records a source journals and ships, the pubsub
// messages on a folder topic, and the frames of the stream protocols. It
// holds every encoder and decoder and nothing else: no I/O, no mesh. Every
// decoder is bounded (no allocation larger than the bytes it was given or
// a stated limit) and fuzzed; every decoding error wraps ErrMalformed.
//
// Conventions: integers are unsigned varints (uvarint) unless noted;
// strings and byte fields are a uvarint length then the bytes (a string is
// at most 4096 bytes); a CID is its binary form as a byte field (length 0
// = none); a time is signed varint unix nanoseconds (0 = unset). A path is
// relative to the folder root, slash-separated, with no empty, "." or ".."
// element (baseline.ValidPath); decoders refuse any other.
//
// # Change records (journal payloads)
//
//	record  = version(1 byte = 1) op(1 byte) path
//	op 1 put     = entry(baseline entry codec, chunks omitted, size 0)
//	               [file only: size base_root splice_start splice_removed
//	                n_added { cid size inline(1 byte) [data if inline=1] }]
//	op 2 delete  = (nothing more)
//	op 3 rename  = to
//	op 4 meta    = mode mtime(signed varint, unix nanos)
//	op 5 group   = n_changes(>= 1) { change(byte field: a record of op 1-4) }
//	               path = the first change's path
//
// A put of a file carries a splice of its chunk list (old chunks
// [start, start+removed) replaced by the added ones) and the content root of
// the version it applies on (none for a new file); the new chunks' bytes
// travel inline unless the folder already holds the chunk elsewhere or the
// record's inline budget (8 MiB) is spent, in which case the backup fetches
// them by CID. A chunk is 1 byte to baseline.MaxChunk; a record's inline
// data is at most 64 MiB.
//
// A group holds the changes of paths that were read together as one
// consistent state (a settled batch and everything else that changed
// meanwhile, see docs/capture.md). It is one journal record: one seq, one
// time. A backup applies all of its changes or none of them in one commit
// and records every path's version at the group's seq and time, so a
// restore at any moment gives either the whole group or none of it. A
// capture too large for one record (32 MiB of payload) is journaled as
// several groups, in order. A capture of a single change is journaled as
// that change, not as a group of one.
//
// A journal record as it travels (Record) is seq, time, payload, where the
// payload is the rest of the frame or message.
//
// # Stream frames (/vigil/sync/1.0.0, /vigil/ack/1.0.0)
//
// A frame is a mesh frame: uvarint length (type byte + payload), type
// byte, payload. A target sends requests on a sync stream; each names a
// folder and only the folder's designated backups are served (others get
// an Error frame). A source accepts request frames of at most 256 KiB; a
// target accepts answer frames of at most 80 MiB.
//
//	0x01 snapshot request   folder (raw bytes, no length; 1-255 bytes)
//	     -> 0x81 head(seq, entry count, total file bytes)
//	        0x82 entries(count, entry...)...   at most 512 entries a frame
//	        0x8E end(seq)
//	0x02 chunks request     folder, count (at most 1024), CID...
//	     -> 0x83 chunks: per CID in request order, 0x01 uvarint(len) bytes,
//	        or 0x00 when the source no longer has it. Requests may be
//	        pipelined; answers come in request order.
//	0x03 journal request    folder, from seq
//	     -> 0x85 record(seq, time, payload)..., 0x8E end(head seq)
//	        or 0x86 compacted(first retained seq): the range is gone and
//	        the target must take a new baseline
//	0x04 path request       folder, path
//	     -> 0x87 head(seq), 0x82 entries..., 0x8E end(seq): the current
//	        entries of path and its subtree, as of seq
//	0x8F error              message (UTF-8 text, at most 4096 bytes used)
//
// On an ack stream the target sends, at most 64 KiB each:
//
//	0x10 ack   folder, applied seq, in baseline(1 byte, 0 or 1),
//	           baseline done bytes, baseline total bytes, applied time,
//	           n_errors (at most 64) { path (empty: the whole replica),
//	           message (at most 512 bytes), since (time) }, more errors
//	           (how many did not fit), pending paths (paths the target
//	           is still bringing to the source's state: not synced;
//	           absent in acks of older nodes, read as 0)
//
// On a hello stream (/vigil/hello/1.0.0) a source asks a peer, once
// connected, whether it backs up the folders the source names it a
// designated backup of; the peer answers from its own config:
//
//	0x20 hello request   count (at most 1024), folder...
//	     -> 0xA0 reply   count, { folder, accepted (1 byte, 0 or 1),
//	                     reason (why not; at most 512 bytes) }...
//
// Both frames are at most 64 KiB.
//
// # Pubsub messages (topic /vigil/folder/1/<source>/<folder>)
//
// The first byte is the type. Only the folder's source may publish (the
// mesh validator checks the signature), and messages are at most 320 KiB.
//
//	0x04 records    consecutive records, each a byte field holding a
//	                Record; at most 256 KiB of records a message
//	0x01 record     one Record
//	0x02 announce   seq, time (a Record with no payload): a record too
//	                large for pubsub; pull it over a stream
//	0x03 heartbeat  head seq (every 500 ms)
package wire
