package mesh

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrFrameTooLarge is returned by ReadFrame when a frame announces a
	// length above the caller's limit, and by WriteFrame for a frame whose
	// length does not fit the format.
	ErrFrameTooLarge = errors.New("mesh: frame too large")
	// ErrBadFrame is returned by ReadFrame for a frame that cannot be
	// decoded (empty frame, overlong length prefix).
	ErrBadFrame = errors.New("mesh: malformed frame")
	// ErrNotAllowed is returned when an operation names a peer that is not
	// in the allow-list, or a peer that may not do what was asked (a peer
	// other than the source publishing on a folder topic).
	ErrNotAllowed = errors.New("mesh: peer not allowed")
	// ErrClosed is returned by operations on a closed Mesh or Topic.
	ErrClosed = errors.New("mesh: closed")
	// ErrMessageTooLarge is returned by Topic.Publish for a message above
	// MaxMessageSize.
	ErrMessageTooLarge = errors.New("mesh: message too large")
	// ErrInvalidFolder is returned by JoinFolder for a folder ID that cannot
	// be part of a topic name (empty, or containing '/' or a control
	// character).
	ErrInvalidFolder = errors.New("mesh: invalid folder id")
	// ErrKeyPermissions is returned by LoadKey for a key file whose mode
	// grants any access to group or others.
	ErrKeyPermissions = errors.New("mesh: key file accessible by group or others")
	// ErrIdleTimeout is returned by the readers and writers of IdleReader
	// and IdleWriter when a stream made no progress for their timeout.
	ErrIdleTimeout = errors.New("mesh: stream idle too long")
	// ErrInvalidConfig is returned by Config.Validate.
	ErrInvalidConfig = errors.New("mesh: invalid config")
)

// PeerError records an operation that failed because of, or while talking
// to, one peer.
type PeerError struct {
	Op   string  // "open", "dial", ...
	Peer peer.ID // the peer at fault
	Name string  // its configured name, if any
	Err  error
}

func (e *PeerError) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("mesh: %s %s (%s): %v", e.Op, e.Name, e.Peer, e.Err)
	}
	return fmt.Sprintf("mesh: %s %s: %v", e.Op, e.Peer, e.Err)
}

func (e *PeerError) Unwrap() error { return e.Err }

// KeyError records a failure to read or write the node's key file.
type KeyError struct {
	Op   string // "generate" or "load"
	Path string // the key file at fault
	Err  error
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("mesh: %s key %s: %v", e.Op, e.Path, e.Err)
}

func (e *KeyError) Unwrap() error { return e.Err }
