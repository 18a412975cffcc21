package mesh

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateKeyThenLoadKeyGivesSameIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	id, err := GenerateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %04o, want 0600", st.Mode().Perm())
	}
	sk, loaded, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded != id {
		t.Fatalf("LoadKey id = %s, GenerateKey said %s", loaded, id)
	}
	if sk.Type().String() != "Ed25519" {
		t.Fatalf("key type = %s, want Ed25519", sk.Type())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the key (temp file left behind?)", len(entries))
	}
}

func TestGenerateKeyRefusesExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	first, err := GenerateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKey(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second GenerateKey: err = %v, want fs.ErrExist", err)
	}
	_, id, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if id != first {
		t.Fatalf("existing key was replaced: id %s, want %s", id, first)
	}
}

func TestLoadKeyRefusesFileReadableByOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if _, err := GenerateKey(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadKey(path)
	if !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("err = %v, want ErrKeyPermissions", err)
	}
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Path != path {
		t.Fatalf("err = %v, want a *KeyError naming %s", err, path)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("message %q should name the path and the mode", err)
	}
}

func TestLoadKeyRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadKey(path); err == nil {
		t.Fatal("LoadKey accepted garbage")
	}
}
