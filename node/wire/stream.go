package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/vigil-mesh/vigil/baseline"
)

// Frame types on the /vigil/sync stream (requests from a target, answers
// from the source) and on the /vigil/ack stream. The package documentation
// specifies each payload.
const (
	SnapshotReq byte = 0x01 // folder
	ChunksReq   byte = 0x02 // folder, count, CIDs
	JournalReq  byte = 0x03 // folder, from seq
	PathReq     byte = 0x04 // folder, path

	SnapshotHead byte = 0x81 // seq, entry count, total file bytes
	Entries      byte = 0x82 // count, entries (baseline entry codec)
	Chunks       byte = 0x83 // answers one chunks request, a chunk or "missing" per CID in order
	RecordFrame  byte = 0x85 // one journal record
	Compacted    byte = 0x86 // first retained seq: the range asked for is gone
	PathHead     byte = 0x87 // seq at which the following entries are current
	End          byte = 0x8E // head seq
	Error        byte = 0x8F // message

	AckFrame byte = 0x10 // one acknowledgement (ack stream)
)

// Limits.
const (
	// MaxFrame bounds an answer frame a target accepts from a source.
	MaxFrame = 80 << 20
	// MaxRequestFrame bounds a request frame a source accepts: requests
	// are small (the largest, a chunks request, holds MaxCIDsPerRequest
	// CIDs of at most 128 bytes).
	MaxRequestFrame = 256 << 10
	// MaxAckFrame bounds an ack frame.
	MaxAckFrame = 64 << 10
	// ChunksPerRequest is how many CIDs a target asks for in one request.
	ChunksPerRequest = 256
	// MaxCIDsPerRequest is the most CIDs a source accepts in one request.
	MaxCIDsPerRequest = 4 * ChunksPerRequest
	// EntriesPerFrame is how many entries a source puts in one frame.
	EntriesPerFrame = 512
)

// EncodeFolder is the payload of a snapshot request: the folder ID.
func EncodeFolder(folder string) []byte { return []byte(folder) }

// DecodeFolder decodes a snapshot request.
func DecodeFolder(b []byte) (string, error) {
	if len(b) == 0 || len(b) > 255 {
		return "", fmt.Errorf("%w: folder ID of %d bytes", ErrMalformed, len(b))
	}
	return string(b), nil
}

// EncodeChunksReq is a chunks request: folder, count, CIDs.
func EncodeChunksReq(folder string, cids []cid.Cid) []byte {
	b := AppendString(nil, folder)
	b = binary.AppendUvarint(b, uint64(len(cids)))
	for _, c := range cids {
		b = AppendBytes(b, c.Bytes())
	}
	return b
}

// DecodeChunksReq decodes a chunks request (at most MaxCIDsPerRequest CIDs).
func DecodeChunksReq(b []byte) (string, []cid.Cid, error) {
	d := NewDecoder(b)
	folder := d.String()
	n := d.Int()
	if d.Err() == nil && n > MaxCIDsPerRequest {
		return "", nil, fmt.Errorf("%w: %d CIDs in one request", ErrMalformed, n)
	}
	out := make([]cid.Cid, 0, min(n, d.Len()))
	for i := 0; i < n && d.Err() == nil; i++ {
		out = append(out, d.CID(false))
	}
	if err := d.End(); err != nil {
		return "", nil, err
	}
	return folder, out, nil
}

// EncodeFolderSeq is a journal request: folder, from seq.
func EncodeFolderSeq(folder string, seq uint64) []byte {
	return binary.AppendUvarint(AppendString(nil, folder), seq)
}

// DecodeFolderSeq decodes a journal request.
func DecodeFolderSeq(b []byte) (string, uint64, error) {
	d := NewDecoder(b)
	f, s := d.String(), d.Uvarint()
	if err := d.End(); err != nil {
		return "", 0, err
	}
	return f, s, nil
}

// EncodePathReq is a path request: folder, path.
func EncodePathReq(folder, p string) []byte { return AppendString(AppendString(nil, folder), p) }

// DecodePathReq decodes a path request; the path must stay inside the folder.
func DecodePathReq(b []byte) (folder, p string, err error) {
	d := NewDecoder(b)
	folder, p = d.String(), d.String()
	if err := d.End(); err != nil {
		return "", "", err
	}
	if err := baseline.ValidPath(p); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return folder, p, nil
}

// Head is the head frame of a snapshot: the journal seq the entries are
// current at, how many entries follow and their total file bytes.
type Head struct {
	Seq     uint64
	Entries uint64
	Total   int64
}

// EncodeHead encodes a snapshot head.
func EncodeHead(h Head) []byte {
	b := binary.AppendUvarint(nil, h.Seq)
	b = binary.AppendUvarint(b, h.Entries)
	return binary.AppendUvarint(b, uint64(h.Total))
}

// DecodeHead decodes a snapshot head.
func DecodeHead(b []byte) (Head, error) {
	d := NewDecoder(b)
	h := Head{Seq: d.Uvarint(), Entries: d.Uvarint(), Total: d.Size()}
	return h, d.End()
}

// EncodeSeq is the payload of End, Compacted and PathHead frames (and of a
// heartbeat): one uvarint.
func EncodeSeq(seq uint64) []byte { return binary.AppendUvarint(nil, seq) }

// DecodeSeq decodes EncodeSeq.
func DecodeSeq(b []byte) (uint64, error) {
	d := NewDecoder(b)
	s := d.Uvarint()
	return s, d.End()
}

// EncodeEntries encodes a frame of entries (wire form: no local inode).
func EncodeEntries(es []*baseline.Entry) []byte {
	b := binary.AppendUvarint(nil, uint64(len(es)))
	for _, e := range es {
		b = baseline.AppendEntry(b, e)
	}
	return b
}

// DecodeEntries decodes a frame of entries; each path is checked.
func DecodeEntries(b []byte) ([]baseline.Entry, error) {
	d := NewDecoder(b)
	n := d.Int()
	if err := d.Err(); err != nil {
		return nil, err
	}
	if n > d.Len() {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", ErrMalformed, n, d.Len())
	}
	rest := d.Rest()
	out := make([]baseline.Entry, 0, n)
	for i := 0; i < n; i++ {
		e, m, err := baseline.DecodeEntry(rest)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		rest = rest[m:]
		out = append(out, e)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes after entries", ErrMalformed)
	}
	return out, nil
}

// AppendChunk appends one answer of a chunks frame: 1, uvarint length, bytes.
func AppendChunk(dst, data []byte) []byte {
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(len(data)))
	return append(dst, data...)
}

// AppendMissing appends the answer for a chunk the source no longer has.
func AppendMissing(dst []byte) []byte { return append(dst, 0) }

// ChunkAnswers reads the answers of a chunks frame in request order.
type ChunkAnswers struct{ d Decoder }

// NewChunkAnswers starts reading a chunks frame.
func NewChunkAnswers(body []byte) *ChunkAnswers { return &ChunkAnswers{d: Decoder{b: body}} }

// Next returns the next answer: the chunk's bytes (aliasing the frame), or
// nil when the source no longer has it. A chunk may not exceed
// baseline.MaxChunk.
func (a *ChunkAnswers) Next() ([]byte, error) {
	if a.d.Bool() {
		data := a.d.Bytes(baseline.MaxChunk)
		if err := a.d.Err(); err != nil {
			return nil, err
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("%w: empty chunk", ErrMalformed)
		}
		return data, nil
	}
	return nil, a.d.Err()
}

// End fails when answers are left over.
func (a *ChunkAnswers) End() error { return a.d.End() }

// DecodeChunks decodes a whole chunks frame answering n CIDs.
func DecodeChunks(body []byte, n int) ([][]byte, error) {
	a := NewChunkAnswers(body)
	out := make([][]byte, 0, min(n, len(body)))
	for range n {
		data, err := a.Next()
		if err != nil {
			return nil, err
		}
		out = append(out, data)
	}
	return out, a.End()
}

// Record is one journal record as it travels: seq, source time, payload
// (an encoded Change).
type Record struct {
	Seq     uint64
	Time    time.Time
	Payload []byte
}

// AppendRecord appends r: uvarint seq, signed unix nanos, payload.
func AppendRecord(dst []byte, r Record) []byte {
	dst = binary.AppendUvarint(dst, r.Seq)
	dst = AppendTime(dst, r.Time)
	return append(dst, r.Payload...)
}

// DecodeRecord decodes AppendRecord; the payload aliases b.
func DecodeRecord(b []byte) (Record, error) {
	d := NewDecoder(b)
	r := Record{Seq: d.Uvarint(), Time: d.Time()}
	if err := d.Err(); err != nil {
		return r, err
	}
	if r.Seq == 0 {
		return r, fmt.Errorf("%w: record seq 0", ErrMalformed)
	}
	r.Payload = d.Rest()
	return r, nil
}

// Ack is what a target tells the source about a replica after making it
// durable, with what keeps it from holding the source's changes.
type Ack struct {
	Folder     string
	Applied    uint64
	Baseline   bool // still in its baseline
	DoneBytes  int64
	TotalBytes int64
	AppliedAt  time.Time // when the target applied Applied
	Errors     []AckError
	MoreErrors uint64 // errors left out to keep the frame small
	// Pending counts paths the target is still bringing to the source's
	// state (a repair waiting for bytes the source could not send): not
	// failures yet, but not backed up. Absent (0) in acks of older nodes.
	Pending uint64
}

// AckError is a failure on the target: a path it cannot write (Path set),
// or one that blocks the whole replica (disk full, Path empty).
type AckError struct {
	Path  string
	Err   string
	Since time.Time
}

// Limits of an ack's errors: messages are cut to maxAckErrMsg bytes and
// errors beyond MaxAckErrors (or beyond the frame budget) are only counted.
const (
	MaxAckErrors = 64
	maxAckErrMsg = 512
	ackBudget    = MaxAckFrame - 1024
)

// EncodeAck encodes an ack; errors that do not fit are counted in
// MoreErrors.
func EncodeAck(a Ack) []byte {
	b := AppendString(nil, a.Folder)
	b = binary.AppendUvarint(b, a.Applied)
	b = AppendBool(b, a.Baseline)
	b = binary.AppendUvarint(b, uint64(a.DoneBytes))
	b = binary.AppendUvarint(b, uint64(a.TotalBytes))
	b = AppendTime(b, a.AppliedAt)
	var errs []byte
	n := 0
	more := a.MoreErrors
	for _, e := range a.Errors {
		msg := e.Err
		if len(msg) > maxAckErrMsg {
			msg = msg[:maxAckErrMsg]
		}
		enc := AppendTime(AppendString(AppendString(nil, e.Path), msg), e.Since)
		if n == MaxAckErrors || len(b)+len(errs)+len(enc) > ackBudget {
			more++
			continue
		}
		errs = append(errs, enc...)
		n++
	}
	b = binary.AppendUvarint(b, uint64(n))
	b = append(b, errs...)
	b = binary.AppendUvarint(b, more)
	return binary.AppendUvarint(b, a.Pending)
}

// DecodeAck decodes an ack.
func DecodeAck(b []byte) (Ack, error) {
	d := NewDecoder(b)
	a := Ack{Folder: d.String(), Applied: d.Uvarint(), Baseline: d.Bool(), DoneBytes: d.Size(), TotalBytes: d.Size()}
	a.AppliedAt = d.Time()
	n := d.Int()
	if d.Err() == nil && n > MaxAckErrors {
		d.Fail("%d errors in an ack", n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		e := AckError{Path: d.String(), Err: d.String(), Since: d.Time()}
		a.Errors = append(a.Errors, e)
	}
	a.MoreErrors = d.Uvarint()
	if d.Err() == nil && d.Len() > 0 {
		a.Pending = d.Uvarint()
	}
	return a, d.End()
}

// RemoteError is an Error frame sent by the other side.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return "remote: " + e.Msg }

// DecodeError decodes an Error frame (its message, cut to 4 KiB).
func DecodeError(b []byte) error {
	if len(b) > maxString {
		b = b[:maxString]
	}
	return &RemoteError{Msg: string(b)}
}

// IsRemote reports whether err is (or wraps) an error sent by the peer.
func IsRemote(err error) bool {
	var re *RemoteError
	return errors.As(err, &re)
}
