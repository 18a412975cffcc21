package mesh

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"
)

// The kinds of failed dial to one address, most telling first: when a
// dial tried several addresses, the problem reports the first kind found.
const (
	failMismatch = iota // the remote authenticated as another peer
	failRefused         // connection refused
	failNoRoute         // host or network unreachable
	failTimeout         // no answer in time
	failOther
)

// dialProblem turns the error of a failed dial to id into one line for
// the user that names the address and the peer (see PeerStatus.Problem).
func (m *Mesh) dialProblem(id peer.ID, err error) string {
	p := m.listed(id)
	var de *swarm.DialError
	if errors.As(err, &de) && len(de.DialErrors) > 0 {
		return addrProblem(p, de.DialErrors)
	}
	switch {
	case errors.Is(err, swarm.ErrNoAddresses) && len(p.Addrs) == 0:
		return fmt.Sprintf("no address configured for %s; waiting for it to dial this node", displayName(p))
	case errors.Is(err, swarm.ErrNoAddresses), errors.Is(err, swarm.ErrNoGoodAddresses):
		return fmt.Sprintf("none of the addresses of %s can be dialed: %s", displayName(p), joinAddrs(p.Addrs))
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		addrs := p.Addrs
		if len(addrs) == 0 {
			addrs = m.host.Peerstore().Addrs(id)
		}
		return fmt.Sprintf("no answer from %s at %s (dial timed out)", displayName(p), joinAddrs(addrs))
	}
	return fmt.Sprintf("dial %s failed: %s", displayName(p), oneLine(err.Error()))
}

// addrProblem describes the failed dials to the addresses of p by the
// most telling kind of failure among them.
func addrProblem(p Peer, errs []swarm.TransportError) string {
	best, kind := -1, failOther+1
	var same []multiaddr.Multiaddr // addresses that failed the way best did
	for i, te := range errs {
		k := failKind(te.Cause)
		switch {
		case k < kind:
			best, kind, same = i, k, []multiaddr.Multiaddr{te.Address}
		case k == kind:
			same = append(same, te.Address)
		}
	}
	te := errs[best]
	switch kind {
	case failMismatch:
		var mm sec.ErrPeerIDMismatch
		errors.As(te.Cause, &mm)
		// TLS puts a placeholder in Actual when the remote key yields no
		// peer ID.
		if actual, err := peer.IDFromBytes([]byte(mm.Actual)); err == nil {
			return fmt.Sprintf("peer at %s identifies as %s, not the configured %s", te.Address, actual, p.ID)
		}
		return fmt.Sprintf("peer at %s identifies as a different peer, not the configured %s", te.Address, p.ID)
	case failRefused:
		return fmt.Sprintf("nothing listens at %s (connection refused)", joinAddrs(same))
	case failNoRoute:
		return fmt.Sprintf("no route to %s for %s (host or network unreachable)", joinAddrs(same), displayName(p))
	case failTimeout:
		return fmt.Sprintf("no answer from %s at %s (dial timed out)", displayName(p), joinAddrs(same))
	}
	return fmt.Sprintf("dial %s at %s failed: %s", displayName(p), te.Address, oneLine(te.Cause.Error()))
}

// mismatched reports whether a failed dial met a peer with another ID
// than the configured one at one of its addresses.
func mismatched(err error) bool {
	var de *swarm.DialError
	if errors.As(err, &de) {
		for _, te := range de.DialErrors {
			if failKind(te.Cause) == failMismatch {
				return true
			}
		}
	}
	return failKind(err) == failMismatch
}

func failKind(err error) int {
	var mm sec.ErrPeerIDMismatch
	switch {
	case errors.As(err, &mm):
		return failMismatch
	case errors.Is(err, syscall.ECONNREFUSED):
		return failRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return failNoRoute
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err), isTimeout(err):
		return failTimeout
	}
	return failOther
}

// isTimeout reports whether some error in err's chain says it is a
// timeout (net.Error does, as do QUIC's idle and handshake timeouts).
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// refusedProblem is the problem of a peer that closed the connection we
// made right after the handshake: its gater refused us, which is what a
// vigil node does to a peer it does not list.
func (m *Mesh) refusedProblem(id peer.ID) string {
	p := m.listed(id)
	return fmt.Sprintf("%s closed the connection right after the handshake: it probably does not list this node (%s) in its peers",
		displayName(p), m.self)
}

func joinAddrs(addrs []multiaddr.Multiaddr) string {
	if len(addrs) == 0 {
		return "(no address)"
	}
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// oneLine keeps the first line of s (libp2p's dial errors list one
// address per line).
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
