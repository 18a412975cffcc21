// Package node is the composition root of a vigil node: New wires an agent
// (package agent) for every folder the config protects and a replica
// (package replica) for every folder it keeps for another node, over one
// network (the libp2p mesh, or a transport.Hub in tests); Run runs them with
// the control endpoint (package control), the metrics endpoint and the
// background scrub; Lag and Status assemble what `vigil lag` and `vigil
// status` report.
//
// # Packages
//
//	node/config     vigil.yaml schema, defaults, validation
//	node/watch      fsnotify settling; never reads file contents
//	node/wire       the spec and codecs of records, frames, messages
//	node/index      the tree of entries, chunk locations, bbolt layout
//	node/history    version rows, history chunks, prune
//	node/transport  streams and topics as interfaces; libp2p adapter; Hub
//	node/agent      source role: capture, publish, serve, acknowledgements
//	node/replica    target role: baseline, apply, repair, fetch, acks
//	node/restore    restore, verify, history over a replica's data
//	node/control    the control endpoint: server, client, report types
//
// Agent and replica never import each other; both take their dependencies
// explicitly (journal.Log, *store.DB, a watcher, a publisher or transport).
//
// # Concurrency model
//
// Run starts one errgroup; each goroutine below owns what is listed, and
// Close cancels the group and waits for all of them before closing the
// journals, the network and the database (in that order).
//
//	control server (2)   nothing: handlers call Lag, Status, Sync, Restore,
//	                     Verify, History, which read under the owners' locks
//	                     or post a barrier to the owner's goroutine
//	metrics server (2)   nothing: the lag collector calls Lag at scrape time
//	network Run          the mesh's dial loop (libp2p owns its goroutines)
//	scrub                nothing: calls Verify every scrub_interval
//	Agent.Run (each)     the folder's index, capture state; its watcher's
//	                     goroutines (event loop, error drain)
//	Replica.Run (each)   the replica's tree, locations, pending records;
//	                     its topic reader, ack loop, fetch and copy stages
//	stream handlers      one goroutine per inbound sync or ack stream,
//	                     started by the network; stopped by Server.Stop
//
// Locks, in the order they may be taken: Node.verifyMu (leaf); Agent.mu,
// then the journal's locks; Replica.mu (leaf); history.Store's GC lock
// (prune writes, restores read; never held across a channel wait); bbolt's
// writer lock (db.Update) is taken last, with none of the above held
// except Agent.mu during a capture's commit.
package node
