// Package store keeps a node's data on disk: the embedded metadata index,
// the content-addressed chunk store and the replica trees. It is the lowest
// package of vigil and imports no other vigil package.
//
// # Metadata index
//
// DB wraps a bbolt file (mode 0600, opened with a lock timeout of about one
// second: a second process gets a *PathError wrapping ErrLocked). Buckets
// are addressed by a path of names ([]string{"replica", peer, folder}); Put
// creates every missing level, reads treat a missing bucket as empty.
// Integer keys use U64 (8 bytes big endian) so that numeric order is byte
// order and Seek with a prefix visits a range in order. Slices returned by
// a Tx are valid only while the transaction is open. Batch coalesces
// concurrent writers into one commit; its function may run twice.
//
// A damaged index file fails cleanly. bbolt keeps no checksum of its data
// pages; it panics (asserts) when a page does not describe itself as
// expected, and reading a page that points outside the mapped file faults.
// OpenDB, View, Update and Batch run with debug.SetPanicOnFault on and
// turn both into a *DamagedError{Path, What} matching ErrDamaged
// ("store: index.db damaged (PATH): WHAT"); so do bbolt's own refusals to
// open (invalid meta pages, bad checksums). A panic of the caller's own
// function is not damage and is raised again unchanged: a panic raised
// inside a Tx method, or inside bbolt around the caller's function (begin,
// commit, open), is bbolt's; a memory fault is damage wherever it happens
// (a slice handed out by a Tx points into the mapping). Batch is
// implemented here, not by bbolt, so that a batch never runs on a
// goroutine where such a panic could not be recovered. Damage that leaves
// a page's header intact (bytes inside a value that spans several pages,
// flipped bits in a key) is not detected here and is read as data; the
// decoders above (package node/index) check what they read. HoldDB locks
// an index file without reading it and SetAside renames it to
// <path>.damaged-<time>, for `vigil repair --rebuild-index`.
//
// # Chunk store
//
// ChunkStore maps a CID (go-cid; CIDv1 raw with a sha2-256 or blake3
// multihash in vigil) to the chunk bytes. The store does not hash: callers
// verify data against its CID before Put. Put of a chunk already present
// writes nothing. FileChunks lays chunks out as
//
//	DIR/<last 2 characters of the CID string>/<CID string>   the raw chunk bytes
//	DIR/.tmp/chunk-*                                          writes in progress
//
// A chunk is written to DIR/.tmp, fsynced, renamed to its final name, and
// its fan-out directory is fsynced: a crash leaves no partial chunk under a
// final name, and OpenFileChunks empties DIR/.tmp. MemChunks is the
// in-memory implementation for tests.
//
// # Replica trees
//
// Replica is a directory tree that mirrors a source folder and is written
// only through safe operations. Every relative path comes from the network
// and is checked by ValidatePath (slash-separated, not absolute, no empty,
// "." or ".." element even between backslashes, no NUL, at most MaxPathLen
// bytes, no element starting with TempPrefix); before each operation every
// existing parent inside the root is Lstat-ed and a symlink parent is
// refused, so no operation reaches outside the root. Failures are a
// *PathError{Op, Path: rel, Err} wrapping ErrUnsafePath or the OS error.
// The checks assume nothing but vigil writes below the root (the root is
// created 0700); they do not defend against a local process swapping a
// directory for a symlink between the check and the operation.
//
// Files and symlinks are replaced atomically: a TempPrefix entry in the
// same directory is written, fsynced, given its mode and mtime, renamed
// over the target, and the directory is fsynced. CleanTemp removes the
// TempPrefix entries a crash may leave. "." names the root for Abs, Lstat,
// Open, SetMeta and SyncDir only.
//
// Metadata: files get the permission bits of the source (setuid, setgid and
// sticky are not reproduced); directories get them plus owner rwx, so that
// a read-only source directory stays writable in the replica; symlinks get
// their own mtime (lutimes), never a mode. A directory's mtime changes when
// an entry in it is created, renamed or removed, so callers set directory
// mtimes with SetMeta after writing the directory's children.
package store
