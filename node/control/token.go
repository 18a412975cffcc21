package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vigil-mesh/vigil/internal/fsutil"
)

// TokenFile is the name of the control token file in a node's home: what
// a client must send (Authorization: Bearer <token>) to a control endpoint
// on TCP. The unix socket needs none: its mode (0600) is the check.
const TokenFile = "control.token"

// tokenBytes is the size of a token, before hex encoding.
const tokenBytes = 32

// ErrUnauthorized is matched by the error of a request that the control
// endpoint refused for its token (missing or not the node's).
var ErrUnauthorized = errors.New("control: request refused: bad token")

// LoadOrCreateToken returns the token in the file at path, creating the
// file (mode 0600, 32 random bytes in hex) when there is none; an existing
// file is kept. It refuses a file that group or others may read or write,
// one owned by another user, a symlink, or one that does not hold a token,
// each time naming the file.
func LoadOrCreateToken(path string) (string, error) {
	tok, err := readToken(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("control: token file %s: %w", path, err)
	}
	tok = hex.EncodeToString(b[:])
	// Written aside, fsynced, then linked into place: the link fails if
	// another process made the file meanwhile, whose token then wins.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+TokenFile+"-*")
	if err != nil {
		return "", fmt.Errorf("control: token file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(tok + "\n")
	if err == nil {
		err = tmp.Sync() // CreateTemp made it 0600
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("control: token file %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("control: token file %s: %w", path, err)
	}
	if err := fsutil.SyncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("control: token file %s: %w", path, err)
	}
	return readToken(path)
}

// readToken reads and checks the token file at path. A missing file is an
// error matching fs.ErrNotExist.
func readToken(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return "", fmt.Errorf("control: token file %s is a symlink; it must be a file of its own (mode 0600)", path)
		}
		return "", fmt.Errorf("control: token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("control: token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("control: token file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("control: token file %s has mode %04o: group or others may read it; chmod 600 %s (or remove it: `vigil run` makes a new one)", path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("control: token file %s belongs to uid %d, not to this user (uid %d)", path, st.Uid, os.Geteuid())
	}
	var buf [4 * tokenBytes]byte
	n, _ := f.Read(buf[:])
	tok := strings.TrimSpace(string(buf[:n]))
	if b, err := hex.DecodeString(tok); err != nil || len(b) != tokenBytes {
		return "", fmt.Errorf("control: token file %s does not hold a token (%d hex digits); remove it and `vigil run` makes a new one", path, 2*tokenBytes)
	}
	return tok, nil
}

type tokenKey struct{}

// ContextWithToken returns a context that makes Serve require token on a
// TCP endpoint. (Serve is called by the node's Run, which passes its
// context on; `vigil run` puts the token of the node's home in it.)
func ContextWithToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, tokenKey{}, token)
}

func tokenFrom(ctx context.Context) string {
	s, _ := ctx.Value(tokenKey{}).(string)
	return s
}
