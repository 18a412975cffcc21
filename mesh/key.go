package mesh

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vigil-mesh/vigil/internal/fsutil"
)

// keyFileMode is the mode of a key file written by GenerateKey.
const keyFileMode fs.FileMode = 0o600

// maxKeyFileSize bounds what LoadKey reads: a marshalled Ed25519 key is 68
// bytes, an RSA one a few KiB.
const maxKeyFileSize = 64 << 10

// GenerateKey creates a new Ed25519 identity and writes it to path in the
// libp2p protobuf encoding (crypto.MarshalPrivateKey), with mode 0600. The
// file is written to a temporary name in the same directory, synced, then
// moved into place, and the directory is synced. It refuses to replace an
// existing file: the error then wraps fs.ErrExist.
func GenerateKey(path string) (peer.ID, error) {
	fail := func(err error) (peer.ID, error) {
		return "", &KeyError{Op: "generate", Path: path, Err: err}
	}
	if _, err := os.Lstat(path); err == nil {
		return fail(fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return fail(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return fail(err)
	}
	raw, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return fail(err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fail(err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op once linked or renamed away
	if err := tmp.Chmod(keyFileMode); err != nil {
		tmp.Close()
		return fail(err)
	}
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	// A hard link never replaces an existing file, which closes the window
	// between the check above and here; fall back to rename on file
	// systems without hard links.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fail(fs.ErrExist)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return fail(err)
		}
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return fail(err)
	}
	return id, nil
}

// LoadKey reads a key file written by GenerateKey. It refuses a file that
// grants any permission to group or others (the error wraps
// ErrKeyPermissions and names the path and the mode), like ssh does.
func LoadKey(path string) (crypto.PrivKey, peer.ID, error) {
	fail := func(err error) (crypto.PrivKey, peer.ID, error) {
		return nil, "", &KeyError{Op: "load", Path: path, Err: err}
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if !st.Mode().IsRegular() {
		return fail(fmt.Errorf("not a regular file (mode %s)", st.Mode()))
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fail(fmt.Errorf("mode %04o, want 0600: %w", perm, ErrKeyPermissions))
	}
	if st.Size() > maxKeyFileSize {
		return fail(fmt.Errorf("file is %d bytes, not a key", st.Size()))
	}
	raw := make([]byte, st.Size())
	if _, err := io.ReadFull(f, raw); err != nil {
		return fail(err)
	}
	sk, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return fail(fmt.Errorf("decode: %w", err))
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return fail(err)
	}
	return sk, id, nil
}
