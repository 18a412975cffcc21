// Package mesh is vigil's network layer: the libp2p host restricted to the
// peers of the config, the gossipsub topics that carry folder change
// records, the direct stream protocols, and the node's key file. It moves
// opaque bytes: the messages on topics and streams are defined by package
// node.
//
// # Identity
//
// A node is an Ed25519 key pair; its peer ID is derived from the public
// key. GenerateKey writes the private key in the libp2p protobuf encoding
// (crypto.MarshalPrivateKey) to its own file, mode 0600, never replacing
// an existing file; LoadKey refuses a key file that grants any access to
// group or others.
//
// # Host
//
// Transports: TCP and QUIC (quic-v1). Security: TLS 1.3 preferred, Noise as
// the fallback (on these machines one TCP+TLS stream moves ~1.6 GB/s,
// Noise ~1.2 GB/s). Muxer: yamux. Dials try TCP addresses first and QUIC
// 300 ms later, because QUIC streams are about three times slower for bulk
// data. No relay, NAT port mapping, hole punching or mDNS: peers are dialed
// at the addresses of the config (plus those they announce via identify).
// libp2p's resource manager enforces the limits below (see Limits); no
// connection manager trims connections.
//
// # Trust
//
//   - The connection gater admits only the peers of the allow-list
//     (Config.Peers, replaced by Mesh.SetPeers): it refuses to dial any
//     other peer, and refuses an inbound connection right after
//     the security handshake has authenticated the remote peer, before a
//     muxer exists, so no stream from a stranger can ever be opened. (With
//     TLS 1.3 the dialer completes its side of the handshake first, so a
//     refused dialer may see a connection for a moment before it closes.)
//   - Gossipsub runs with StrictSign: every message carries its author's
//     peer ID, a sequence number and a signature by the author's key;
//     unsigned or badly signed messages are dropped.
//   - Each folder topic has a member list. The gossipsub peer filter keeps
//     every other peer out of the topic's mesh, gossip and message
//     requests, so non-members never receive the topic from us (flood
//     publishing is off: it would bypass the filter). The topic validator
//     rejects a message whose signer is not the folder's source, whose
//     payload exceeds MaxMessageSize (320 KiB), or that was forwarded by a non-member.
//
// # Limits
//
// The allow-list bounds who may connect, not what an admitted peer may
// take, so libp2p's resource manager bounds that. Its limits are libp2p's
// defaults (rcmgr.DefaultLimits plus those of libp2p's own protocols,
// identify and ping), scaled to the machine (an eighth of its memory, half
// of its file descriptors), with these per-peer limits on top
// (Config.Limits; zero fields take the defaults):
//
//	limit                                          default  field
//	---------------------------------------------  -------  ------------------
//	/vigil/sync streams of one peer, each way      32       Limits.SyncStreams
//	/vigil/ack streams of one peer, each way       8        Limits.AckStreams
//	/vigil/hello streams of one peer, each way     4        (fixed)
//	streams of one peer, any protocol (also those  64       Limits.PeerStreams
//	still negotiating), each way                            (sync + ack + 24)
//	memory reserved for one peer                   64 MiB   Limits.PeerMemory
//
// A stream beyond a limit is reset with the error code
// network.StreamResourceLimitExceeded and counted in
// streams_refused_total (Open negotiates lazily with a peer known to serve
// the protocol, so the refusal shows at the stream's first read).
// Other peers are not affected: each peer's streams count on their own.
// The streams of one protocol for all peers together are bounded by
// libp2p's default, raised if needed so every peer can reach its limit.
// These limits are sized by New for the peers of Config.Peers and stay as
// they are when Mesh.SetPeers changes the allow-list: per-peer limits
// apply to added peers too, but a node that grows far beyond its first
// list may find the all-peers bound of a protocol short of every peer at
// its own limit until it restarts.
//
// A backup keeps one /vigil/ack stream per folder it holds from a source
// and opens a few /vigil/sync streams per folder it catches up; a node
// whose peers back up more folders from it than the defaults allow raises
// them.
//
// The memory the resource manager accounts is what the muxer and
// transports reserve: 256 KiB per yamux stream and QUIC's flow-control
// windows. Yamux grants every stream its 16 MiB receive window up front
// (for bulk throughput) while reserving only those 256 KiB, and frames
// are held by their readers, outside the resource manager: what one peer
// can make a node hold is bounded by its stream limits times (16 MiB + the
// largest frame its readers accept), not by PeerMemory.
//
// # Idle streams
//
// A handler that waits for a peer ties up a goroutine and one of the
// peer's streams until the peer sends or the stream ends. IdleReader and
// IdleWriter bound that wait: they set the stream's read (write) deadline
// before every Read (every piece of at most 256 KiB written), so a stream
// that moves no byte for the given time fails with ErrIdleTimeout, while a
// slow one that keeps moving never does. IdleTimeout (2 minutes) is the
// bound to use on the stream protocols:
//
//	r := bufio.NewReaderSize(mesh.IdleReader(s, mesh.IdleTimeout), 256<<10)
//	w := bufio.NewWriterSize(mesh.IdleWriter(s, mesh.IdleTimeout), 64<<10)
//
// # Topics
//
// One gossipsub topic per (source peer, folder):
//
//	/vigil/folder/1/<source peer ID, base58>/<folder ID>
//
// e.g. /vigil/folder/1/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/docs.
// The folder ID is the id of the folder in the source's config; it may not
// be empty or contain '/' or control characters. "1" is the version of the
// record format carried on the topic. Members: on the source, its
// designated backups (folders[].backup_to); on a backup, the source. Only
// the source publishes. A payload is at most MaxMessageSize (320 KiB); in
// practice records are small and large chunks are announced by CID and
// fetched over ProtoSync.
//
// Gossipsub is the fast path, never the only one: it drops messages under
// bursts and while a peer is disconnected, and it validates messages on
// several workers, so even one source's messages may arrive out of order.
// Records carry a per-(source, folder) sequence number; a backup orders
// them and pulls a missing range over ProtoSync. A member that just
// connected enters the source's gossipsub mesh at the next heartbeat
// (about a second later) and misses what is published before:
// Topic.WaitPeer tells when it is in.
//
// A Topic subscribes when it is joined, so messages that arrive before the
// first Next are kept, up to 256; beyond that gossipsub drops them
// (metric vigil_mesh_pubsub_messages_dropped_total{reason="subscriber_full"}).
//
// Messages carried on folder topics (each payload is one message encoded
// by package node; mesh does not look inside):
//
//	type  name       content
//	----  ---------  --------------------------------------------------
//	0x04  records    consecutive records, length-prefixed (<= 256 KiB)
//	0x01  record     seq, unix nanos, change record (up to 256 KiB)
//	0x02  announce   seq, unix nanos: record too large, pull it
//	0x03  heartbeat  head seq, every 500 ms
//
// (encodings: package node, doc.go)
//
// # Protocols
//
// Direct streams, opened with Mesh.Open and served by Mesh.Handle. Sync
// and ack run from the backup (target) to the source, hello from the
// source to each backup:
//
//	/vigil/sync/1.0.0   target -> source: requests for a snapshot, chunks
//	                    by CID, a journal range (from seq, to seq) and a
//	                    path's manifest; the source answers on the same
//	                    stream.
//	/vigil/ack/1.0.0    target -> source: the sequence number the target
//	                    has applied (durably), so the source can truncate
//	                    its journal.
//	/vigil/hello/1.0.0  source -> target: one request and one answer, then
//	                    the stream is closed: the source asks whether the
//	                    target consents to back up the source's folders,
//	                    and learns it before it counts on that backup.
//	                    (messages: package node, doc.go)
//
// Every message on a stream is one frame; its type byte says which
// message it is:
//
//	type  protocol  name              content
//	----  --------  ----------------  -----------------------------------
//	0x01  sync      snapshot request  folder
//	0x02  sync      chunks request    folder, CIDs (pipelined)
//	0x03  sync      journal request   folder, from seq
//	0x04  sync      path request      folder, path
//	0x81  sync      snapshot head     seq, entry count, total bytes
//	0x82  sync      entries           count, entries
//	0x83  sync      chunks            per CID in request order: 1, length,
//	                                  bytes; or 0 (not available)
//	0x85  sync      record            seq, unix nanos, change record
//	0x86  sync      compacted         first retained seq
//	0x87  sync      path head         seq the entries are current at
//	0x8E  sync      end               head seq
//	0x8F  sync      error             message
//	0x10  ack       ack               folder, applied seq, baseline
//	                                  state and progress, applied time
//
// (encodings: package node, doc.go)
//
// # Frames
//
//	+-------------------------+--------+--------------------+
//	| length: uvarint         | type   | payload            |
//	| = 1 + len(payload)      | 1 byte | length - 1 bytes   |
//	+-------------------------+--------+--------------------+
//
// The length is an unsigned LEB128 varint (encoding/binary.PutUvarint) of
// at most 10 bytes and counts the type byte and the payload, so it is
// never 0. A reader passes its own limit (ReadFrame's max) and gets
// ErrFrameTooLarge before anything is allocated for a longer frame. A
// stream that ends between frames yields io.EOF; one that ends inside a
// frame yields io.ErrUnexpectedEOF. Type bytes and payload encodings are
// defined by package node.
//
// The memory ReadFrame holds follows the bytes received, not the length
// announced. A frame of up to 64 KiB is read into one buffer of its
// length. A longer one starts in a buffer of at most 64 KiB that grows
// eightfold each time it fills; once it holds a sixteenth of the frame,
// the rest is read into a buffer of the announced length, the one
// returned. A peer that announces 80 MiB and sends 10 bytes costs the
// reader a 16 KiB buffer; in general a reader holds at most about 16
// times what it received, plus 64 KiB. The intermediate buffers are
// recycled (a sync.Pool per power-of-two size), and growing copies about
// a fourteenth of the frame once more.
//
// # Connectivity
//
// Mesh.Run keeps every configured peer connected: it dials them at start
// and redials after a failure or a disconnect with an exponential backoff
// from 100 ms to 10 s (jittered), clearing libp2p's own dial backoff
// before each attempt. Both ends run this loop, so a peer that restarts
// dials the others itself as soon as it starts. Mesh.OnConnect callbacks
// fire each time a configured peer goes from no connection to a
// connection: that is where a backup starts its catch-up.
//
// Why a peer is not connected: PeerStatus.Problem holds one line for the
// user from the last failed attempt of Run, naming the address and the
// peer. It is empty while the peer is connected (it is cleared when the
// peer connects, whoever dialed) and before any attempt with the peer's
// current addresses. It is logged at Info level when it changes, not at
// every retry, so a typo in a peer ID shows without debug logging. The
// cases, most telling first when a dial tried several addresses:
//
//	peer at ADDR identifies as ID, not the configured ID
//	    the security handshake authenticated another peer at that
//	    address ("a different peer" when libp2p cannot say which)
//	nothing listens at ADDR[, ADDR...] (connection refused)
//	no route to ADDR for NAME (host or network unreachable)
//	no answer from NAME at ADDR[, ADDR...] (dial timed out)
//	dial NAME at ADDR failed: <libp2p's error, first line>
//	no address configured for NAME; waiting for it to dial this node
//	NAME closed the connection right after the handshake: it probably
//	    does not list this node (ID) in its peers
//	    our dial succeeded, then the peer dropped the connection before
//	    identify: its gater refused us
//
// NAME is the configured name of the peer, or its ID when it has none.
//
// # Allow-list changes
//
// Mesh.SetPeers replaces the allow-list of a running mesh (a config
// reload), validated like Config.Peers (nothing changes on error). After
// it returns: an added peer is admitted and Run dials it at once; a
// removed peer is refused by the gater, Open, WaitConnected and the
// folder topics (its messages are rejected and the gossipsub filter keeps
// it out, though member lists still name it; listed again, it is a member
// again), Run stops dialing it, and its connections are closed; a peer
// whose addresses changed gets the new ones in the peerstore,
// permanently, the old ones (and those it announced) dropped, and is
// redialed at once if it is not connected; a renamed peer shows its new
// name in PeerName, Peers, logs and the peer label of the metrics.
//
// Concurrency: the allow-list is an immutable snapshot behind an atomic
// pointer. The gater, Open, Handle, WaitConnected, PeerName, Peers, the
// event loop and the topic filter and validators each read one version;
// SetPeers, serialised by its own mutex, publishes the next version, then
// closes the old version's channel to wake Run, the event loop and
// WaitConnected. Run owns the dial loops: on each version it cancels the
// loop of a peer removed or readdressed and starts one for each peer
// without a loop. A dial loop's state (its wake-up channel and Problem)
// belongs to one peer with one set of addresses; a loop checks that its
// state is still current before each dial, so a removed peer is never
// redialed, even before Run cancels the loop. A connection that passed
// the gater just before SetPeers removed its peer is closed by the event
// loop when it comes up.
//
// # Metrics
//
// Namespace "vigil", subsystem "mesh", registered on Config.Registerer
// only: connected_peers, stream_bytes_total{protocol,direction} (a
// counter: throughput is its rate()), pubsub_messages_published_total,
// pubsub_messages_received_total, pubsub_messages_rejected_total{reason},
// pubsub_messages_dropped_total{reason}, gater_refused_total{direction},
// streams_refused_total{protocol} (protocol empty: refused when opened,
// before negotiation; "service:<name>" for libp2p's services),
// resources_refused_total{resource} (connection, memory), and the
// resource manager's accounting at scrape time:
// resource_streams{scope,direction} and resource_memory_bytes{scope}
// (scope system or transient), peer_streams{peer,direction} and
// peer_memory_bytes{peer} for each connected configured peer (labelled
// with its name, or its ID when it has none).
package mesh
