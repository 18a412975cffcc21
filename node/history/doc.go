// Package history keeps, on a backup node, every applied state of every
// path of a replica, so that any file or folder can be restored as it was.
//
//   - every applied state of every path is a version row in bbolt bucket
//     ["history", <source>, <folder>, "v"], key = path, 0x00, seq (8 bytes
//     big endian) -- so a path's versions are adjacent and in seq order --
//     and value = unix nanos (8 bytes BE, the source's capture time of the
//     change), then either 0x00 (the path does not exist from then on) or
//     0x01 followed by the entry (baseline entry codec);
//   - the content of a version lives in the replica while the replica still
//     holds it; chunks a change removes from the replica (a file replaced,
//     deleted, or renamed over) are first copied into the replica's history
//     chunk store, DATA_DIR/history/<source>/<folder>/chunks, once per CID.
//
// A version row and the applied seq are committed in the same transaction
// after the chunks it depends on are durable, so a crash loses neither.
//
// A Store is shared by the replica that writes it and the restores that read
// it: Prune deletes chunks only while no restore holds the store's read lock
// (ReadLock), and postpones the collection otherwise.
package history
