// Package baseline owns what a folder is made of: scanning a folder into
// entries, cutting files into content-defined chunks, chunk CIDs, the Merkle
// roots that identify a file version and a folder snapshot, the binary
// entry codec, splices between chunk lists, and ignore patterns.
//
// # Chunking
//
// Files are cut with FastCDC (normalization level 2, gear table and cut
// rule of github.com/jotfs/fastcdc-go v0.2.0 with seed 0), chunks of
// MinChunk=2 KiB to MaxChunk=32 KiB averaging AvgChunk=8 KiB, so that a small
// in-place change or insert resends one or two chunks. These parameters are
// part of the format: tests pin the cut points of a fixed input and check
// them against the library. ChunkReader pipelines the work: one goroutine
// reads 256 KiB segments and finds cut points, GOMAXPROCS goroutines hash
// whole segments, and the caller's goroutine receives the chunks in order;
// at most min(GOMAXPROCS, 8)+2 segments are held at once. A stream that fits
// one segment is handled without goroutines.
//
// # Chunk CIDs
//
// A chunk's CID is CIDv1, codec raw (0x55), multihash BLAKE3 (0x1e) with a
// 32-byte digest: the bytes 0x01 0x55 0x1e 0x20 followed by BLAKE3-256 of the
// chunk. VerifyChunk also accepts SHA2-256 (0x12) multihashes; nothing else.
//
// # Merkle roots
//
// All hashes are BLAKE3-256; H(x) below. A node's "multihash" m(d) is the
// 34 bytes 0x1e 0x20 d. Roots are returned as raw CIDv1 of m(root).
//
//	content leaf i   = H(0x00 || CID bytes of chunk i || uvarint(size of chunk i))
//	snapshot leaf    = H(0x02 || uvarint(len(path)) || path || kind byte ||
//	                     uvarint(mode bits) || varint(mtime seconds) ||
//	                     uvarint(mtime nanoseconds) || CID bytes of entry.Root())
//	inner node       = H(0x01 || m(left) || m(right))
//
// A level is folded left to right in pairs; an odd last node moves up to the
// next level unchanged; the single remaining node is the root. With no
// leaves the root is H("") (the empty string). ContentRoot uses content
// leaves in chunk order. SnapshotRoot uses snapshot leaves in the order of
// the entries sorted by Path (byte-wise), so it does not depend on the order
// of its input but does depend on which content sits at which path.
// Entry.Root is ContentRoot(Chunks) for a file, H("symlink\x00" || target)
// for a symlink and H("dir") for a directory.
//
// # Entry codec (version 1)
//
// Used on the wire and in the index. Integers are varints as in
// encoding/binary and must be minimal (the encoding is canonical: decoding
// and re-encoding gives the same bytes).
//
//	byte     version = 1
//	byte     flags: bit 0 = local identity (inode, dev) follows; others 0
//	uvarint  len(path), then path (1..4096 bytes, must pass ValidPath)
//	byte     kind: 1 file, 2 dir, 3 symlink
//	uvarint  mode: Unix permission bits 0..07777 (04000 setuid, 02000 setgid, 01000 sticky)
//	varint   mtime, seconds since the Unix epoch
//	uvarint  mtime nanoseconds, < 1e9
//	file:    uvarint size; uvarint chunk count; per chunk 36 bytes of CID
//	         (raw CIDv1, BLAKE3 or SHA2-256, 32-byte digest) and uvarint size
//	symlink: uvarint len(target), then target (1..4096 bytes, no NUL); size = len(target)
//	dir:     nothing
//	if flag bit 0: uvarint inode, uvarint dev (not both zero)
//
// DecodeEntry bounds every field: chunk count <= size/MinChunk+2, <= 1<<24
// and <= what the remaining input can hold; each chunk size in 1..MaxChunk;
// the chunk sizes sum to size. AppendEntry never writes the local identity;
// AppendEntryLocal does, for a node's own index (so a restart can skip
// rehashing unchanged files).
//
// # Splices
//
// Diff(old, new) keeps the longest common prefix, then the longest common
// suffix of what remains, and replaces the middle: old[Start:Start+Removed]
// becomes Added. A journal record carries a splice rather than a manifest.
//
// # Ignore patterns
//
// What a folder leaves out of protection follows gitignore(5), compiled once
// into a Matcher: the folder's `ignore:` list (NewMatcher) followed by the
// lines of IgnoreFile (".vigilignore") at the folder root (LoadMatcher), so
// that the file can re-include what the config excludes.
//
//   - "*.tmp": a pattern without a slash matches a name at any depth.
//   - "/cache", "docs/*.md": a slash at the start or in the middle anchors
//     the pattern at the folder root.
//   - "build/": a trailing slash matches directories only.
//   - "*" and "?" never match "/"; "[a-z]", "[!0-9]", "[^x]", "[[:digit:]]"
//     are bracket expressions as in git, and never match "/".
//   - "**/logs" matches at any depth, "abc/**" everything inside abc (not
//     abc itself), "a/**/b" zero or more directories between; "**" elsewhere
//     is a plain "*".
//   - "!pattern" re-includes what an earlier pattern excluded: the last
//     pattern that matches a path decides.
//   - "\" escapes the next character: "\!x", "\#x", "x\ " (a trailing
//     space), "\*".
//   - "{" and "}" are literal.
//
// A path is ignored if it, or any directory above it, is excluded: as in
// git, nothing below an excluded directory can be re-included, so Scan and
// the watcher need not enter one. Matching is case-sensitive. A config entry
// is one pattern, white space around it dropped; an empty entry or one
// starting with "#" is an error (ErrBadPattern, naming it). IgnoreFile is read
// as git reads a .gitignore: blank lines and "#" comments skipped, trailing
// spaces dropped unless escaped, leading spaces kept, CRLF and a UTF-8 byte
// order mark accepted; an unreadable file, or a bad pattern in it, is an
// *IgnoreFileError naming the file and line. Only the root's IgnoreFile is
// read; one in a subdirectory is an ordinary file.
//
// IgnoreFile is itself always protected, whatever the patterns say (".*"
// included), so a restore brings back the rules with the data. A caller that
// sees IsIgnoreFile(path) change builds a new Matcher with LoadMatcher.
//
// # Scanning
//
// Scan walks a folder with lstat semantics: symlinks are recorded with their
// target verbatim and never followed (the folder root itself may be a
// symlink). Files are hashed by ScanOptions.Workers goroutines, each
// re-reading a file that changed while it was read (up to three reads); the
// entry keeps the mtime seen before its last read so that a later rescan
// notices a change made during it. A file whose kind, size, mtime, inode and
// dev equal the previous entry's keeps its previous chunks unread. Stat does
// the same for one path and also refuses paths below a symlink.
package baseline
