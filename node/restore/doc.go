// Package restore reads what a backup node keeps, without libp2p: Restore
// writes a replica (or some of its paths) as it was at a time or journal
// seq into a directory, Verify re-hashes a replica and its history against
// the index (and against the source's current roots when the replica runs
// and its source is online), History lists a path's versions and Points
// the restore points of a replica. A Replica describes one replica's data,
// from a running node or from a data directory opened offline
// (EachOffline).
//
// A restore never reports success ahead of the fact: every chunk it writes
// is verified against its CID (the bytes written are the bytes verified),
// a chunk the replica does not hold intact is taken from another replica
// file holding it or from the history chunk store, and a file found
// nowhere intact is left out and named (IncompleteError) while the rest is
// restored. Any other failure undoes the restore (see target).
//
// Errors a user must act on carry a message naming the folder, source,
// path or directory at fault and match the package's sentinels with
// errors.Is.
package restore
