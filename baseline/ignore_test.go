package baseline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// gitignoreCase is a list of patterns and the verdict git gives for some
// paths. A path ending in "/" is a directory; the others are files. The
// same table drives TestMatcherFollowsGitignore and, through a real
// repository, TestGitignoreTableAgreesWithGit.
type gitignoreCase struct {
	name     string
	patterns []string
	ignored  []string
	kept     []string
}

var gitignoreCases = []gitignoreCase{
	{
		name:     "a pattern without a slash matches a base name at any depth",
		patterns: []string{"*.tmp"},
		ignored:  []string{"a.tmp", "deep/er/a.tmp", "dir.tmp/", "dir.tmp/inner.txt"},
		kept:     []string{"a.tmp.keep", "tmp", "x.tmpx", "deep/er/"},
	},
	{
		name:     "a star matches dot files",
		patterns: []string{"*"},
		ignored:  []string{".hidden", "a/", "a/.b"},
	},
	{
		name:     "a trailing slash matches directories only, and so everything below them",
		patterns: []string{".cache/", "build/"},
		ignored:  []string{".cache/", "x/.cache/", "x/.cache/blob", "build/out/obj.o", "y/build/"},
		kept:     []string{"z/.cache", "z/build", "buildx/"},
	},
	{
		name:     "a leading slash anchors at the folder root",
		patterns: []string{"/top.txt", "/cache/"},
		ignored:  []string{"top.txt", "cache/", "cache/x"},
		kept:     []string{"sub/top.txt", "sub/cache/", "sub/cache/x"},
	},
	{
		name:     "a slash in the middle anchors at the folder root",
		patterns: []string{"docs/*.md", "doc/*/x"},
		ignored:  []string{"docs/a.md", "doc/a/x"},
		kept:     []string{"docs/sub/a.md", "other/docs/a.md", "a.md", "doc/a/b/x", "doc/x"},
	},
	{
		name:     "wildcards do not cross a slash",
		patterns: []string{"/a?b", "/x*", "/c[!x]d"},
		ignored:  []string{"axb", "xyz", "x/", "cyd"},
		kept:     []string{"a/b", "sub/xyz", "c/d"},
	},
	{
		name:     "leading **/ matches at any depth, the root included",
		patterns: []string{"**/logs", "**/foo/bar"},
		ignored:  []string{"logs/", "logs/a", "x/logs/", "x/y/logs", "foo/bar", "a/b/foo/bar", "c/foo/bar/"},
		kept:     []string{"logsx", "x/alogs", "foo/x/bar", "foo/barx"},
	},
	{
		name:     "trailing /** matches everything inside but not the directory itself",
		patterns: []string{"abc/**", "!abc/keep"},
		ignored:  []string{"abc/x", "abc/d/", "abc/d/e"},
		kept:     []string{"abc/", "abc/keep", "xabc/y", "sub/abc/y"},
	},
	{
		name:     "trailing /**/ matches directories inside",
		patterns: []string{"a/**/"},
		ignored:  []string{"a/b/", "a/b/c", "a/b/d/"},
		kept:     []string{"a/", "a/f"},
	},
	{
		name:     "a/**/b matches zero or more directories between",
		patterns: []string{"a/**/b"},
		ignored:  []string{"a/b", "a/x/b", "a/x/y/b", "a/z/b/", "a/z/b/c"},
		kept:     []string{"a/xb", "b", "x/a/b", "a/bx"},
	},
	{
		name:     "** in the middle backtracks",
		patterns: []string{"a/**/b/c"},
		ignored:  []string{"a/b/c", "a/b/x/b/c"},
		kept:     []string{"a/b/x/c"},
	},
	{
		name:     "** inside a name is a single star",
		patterns: []string{"a**b"},
		ignored:  []string{"ab", "axxb"},
		kept:     []string{"a/b"},
	},
	{
		name:     "the last matching pattern wins",
		patterns: []string{"*.log", "!keep.log", "!*.txt", "*.txt"},
		ignored:  []string{"x.log", "d/x.log", "a.txt"},
		kept:     []string{"keep.log", "d/keep.log"},
	},
	{
		name:     "a negation before the pattern it would undo has no effect",
		patterns: []string{"!keep.log", "*.log"},
		ignored:  []string{"keep.log", "x.log"},
	},
	{
		name:     "nothing below an excluded directory can be re-included",
		patterns: []string{"build/", "!build/keep.txt", "!build/sub/"},
		ignored:  []string{"build/keep.txt", "build/x", "build/sub/", "build/sub/y"},
	},
	{
		name:     "a re-included directory is open again",
		patterns: []string{"*", "!*/", "!*.txt"},
		ignored:  []string{"a.bin", "d/a.bin"},
		kept:     []string{"a.txt", "d/", "d/a.txt", "d/e/"},
	},
	{
		name:     "a re-included directory does not re-include what patterns exclude inside it",
		patterns: []string{"a/**/*", "!a/b"},
		ignored:  []string{"a/b/c", "a/x"},
		kept:     []string{"a/b/"},
	},
	{
		name:     "backslash escapes !, #, a trailing space and wildcards",
		patterns: []string{`\!important.txt`, `\#hash`, `trail\ `, `star\*`, `q\?`, `br\[x]`},
		ignored:  []string{"!important.txt", "#hash", "trail ", "star*", "q?", "br[x]"},
		kept:     []string{"important.txt", "trail", "starx", "qx", "brx"},
	},
	{
		name:     "unescaped trailing spaces are dropped",
		patterns: []string{"spaced.log   ", `two\  `},
		ignored:  []string{"spaced.log", "two "},
		kept:     []string{"spaced.log ", "two  "},
	},
	{
		name:     "bracket expressions as git reads them",
		patterns: []string{"[abc].txt", "[!x]y.dat", "file[0-9]", "[]]z", "[^a-c]w", "[a-]v", `[\]]u`},
		ignored:  []string{"a.txt", "zy.dat", "file7", "]z", "dw", "-v", "av", "]u"},
		kept:     []string{"d.txt", "xy.dat", "filex", "az", "bw", "bv", "\\u"},
	},
	{
		name:     "POSIX character classes",
		patterns: []string{"[[:digit:]]x", "[[:upper:][:punct:]]y", "[![:alnum:]]z"},
		ignored:  []string{"5x", "Ay", "_y", "-z"},
		kept:     []string{"ax", "ay", "az", "5z"},
	},
	{
		name:     "braces are literal",
		patterns: []string{"br{a,b}"},
		ignored:  []string{"br{a,b}"},
		kept:     []string{"bra", "brb"},
	},
	{
		name:     "a lone ] and other punctuation are literal",
		patterns: []string{"a]b", "c+d(e)", "$f^g.h|"},
		ignored:  []string{"a]b", "c+d(e)", "$f^g.h|"},
		kept:     []string{"ab", "cd(e)", "$fxg.h|"},
	},
}

func TestMatcherFollowsGitignore(t *testing.T) {
	for _, tc := range gitignoreCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMatcher(tc.patterns)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []struct {
				paths   []string
				ignored bool
			}{{tc.ignored, true}, {tc.kept, false}} {
				for _, p := range want.paths {
					rel, isDir := strings.TrimSuffix(p, "/"), strings.HasSuffix(p, "/")
					if got := m.Match(rel, isDir); got != want.ignored {
						t.Errorf("patterns %q: Match(%q, dir=%v) = %v, want %v", tc.patterns, rel, isDir, got, want.ignored)
					}
				}
			}
		})
	}
}

// gitCheckIgnore creates the paths in a new repository whose .gitignore
// holds content and returns the paths git check-ignore reports as ignored
// (directories without their trailing slash).
func gitCheckIgnore(t *testing.T, git string, content []byte, paths []string) []string {
	t.Helper()
	dir := t.TempDir()
	run := func(stdin []byte, args ...string) ([]byte, error) {
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+dir, "XDG_CONFIG_HOME="+dir)
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, stderr.String())
		}
		return out, err
	}
	if _, err := run(nil, "init", "-q"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	for _, p := range paths {
		full := filepath.Join(dir, filepath.FromSlash(p))
		var err error
		if strings.HasSuffix(p, "/") {
			err = os.MkdirAll(full, 0o755)
		} else if err = os.MkdirAll(filepath.Dir(full), 0o755); err == nil {
			err = os.WriteFile(full, nil, 0o644)
		}
		if err != nil {
			t.Fatalf("creating %q: %v", p, err)
		}
		in.WriteString(strings.TrimSuffix(p, "/"))
		in.WriteByte(0)
	}
	out, err := run(in.Bytes(), "check-ignore", "--no-index", "--stdin", "-z")
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == 1 {
		return nil // nothing ignored
	}
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	slices.Sort(got)
	return got
}

func lookGit(t *testing.T) string {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed: the table is not cross-checked against git check-ignore")
	}
	return git
}

// gitignore(5) makes consecutive asterisks other than a leading "**/", a
// middle "/**/" and a trailing "/**" plain asterisks; git's own matcher also
// lets "a**/b" match "ab" and "ax/y/b". The documentation is followed.
func TestStarsGluedToANameAreAPlainStar(t *testing.T) {
	m, err := NewMatcher([]string{"/a**/b"})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"a/b": true, "ax/b": true, "ab": false, "ax/y/b": false} {
		if got := m.Match(p, false); got != want {
			t.Errorf("Match(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestGitignoreTableAgreesWithGit(t *testing.T) {
	git := lookGit(t)
	for _, tc := range gitignoreCases {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, p := range tc.ignored {
				want = append(want, strings.TrimSuffix(p, "/"))
			}
			slices.Sort(want)
			content := []byte(strings.Join(tc.patterns, "\n") + "\n")
			got := gitCheckIgnore(t, git, content, slices.Concat(tc.ignored, tc.kept))
			if !slices.Equal(got, want) {
				t.Errorf("patterns %q: git check-ignore ignores %q, the table says %q", tc.patterns, got, want)
			}
		})
	}
}

// ignoreFileContent exercises what only a file has: comments, blank lines,
// CRLF, a byte order mark, significant leading spaces.
const ignoreFileContent = "\uFEFFfirst.bom\n" +
	"# a comment\n" +
	"\n" +
	"   \n" +
	"crlf.txt\r\n" +
	" lead.txt\n" +
	"\\#hash\n" +
	"#not-a-pattern\n" +
	"*.log   \n" +
	"!keep.log\n" +
	"last.txt" // no final newline

func TestIgnoreFileIsReadLikeGitignore(t *testing.T) {
	ignored := []string{"first.bom", "crlf.txt", " lead.txt", "#hash", "x.log", "d/y.log", "last.txt"}
	kept := []string{"lead.txt", "keep.log", "#not-a-pattern", "crlf.txt\r", "a comment", "# a comment"}

	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, IgnoreFile), []byte(ignoreFileContent), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := LoadMatcher(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ignored {
		if !m.Match(p, false) {
			t.Errorf("Match(%q) = false, want true", p)
		}
	}
	for _, p := range kept {
		if m.Match(p, false) {
			t.Errorf("Match(%q) = true, want false", p)
		}
	}

	git, err := exec.LookPath("git")
	if err != nil {
		t.Log("git is not installed: the file is not cross-checked against git check-ignore")
		return
	}
	want := slices.Clone(ignored)
	slices.Sort(want)
	got := gitCheckIgnore(t, git, []byte(ignoreFileContent), slices.Concat(ignored, kept))
	if !slices.Equal(got, want) {
		t.Errorf("git check-ignore ignores %q with the same file, the test says %q", got, want)
	}
}

func TestConfigPatternsAreTrimmed(t *testing.T) {
	m, err := NewMatcher([]string{" spaced.log ", "\ttabbed.txt\t", `kept\ `})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"spaced.log": true, "tabbed.txt": true, "kept ": true, "kept": false, " spaced.log": false} {
		if got := m.Match(p, false); got != want {
			t.Errorf("Match(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestNilAndEmptyMatchersMatchNothing(t *testing.T) {
	var none *Matcher
	if none.Match("a.tmp", false) || none.matchOne("a.tmp", false) {
		t.Error("nil Matcher matched")
	}
	empty, err := NewMatcher(nil)
	if err != nil || empty.Match("anything", true) {
		t.Errorf("empty Matcher: err %v or matched", err)
	}
}

func TestNewMatcherRejectsBadPatterns(t *testing.T) {
	for _, p := range []string{
		"", "   ", "!", "!/", "/", "a//b", "//a", "a\\", "[a-", "[]", "[!]", "x[[:nope:]]", "[[:alpha:]",
		"# a comment", "#", "bad\xffutf8",
	} {
		_, err := NewMatcher([]string{"ok.tmp", p})
		if !errors.Is(err, ErrBadPattern) || !strings.Contains(err.Error(), fmt.Sprintf("%q", p)) {
			t.Errorf("pattern %q: err = %v, want ErrBadPattern naming it", p, err)
		}
	}
}

func TestIgnoreFileIsNeverIgnored(t *testing.T) {
	m, err := NewMatcher([]string{".*", "*", "/" + IgnoreFile})
	if err != nil {
		t.Fatal(err)
	}
	if m.Match(IgnoreFile, false) || m.matchOne(IgnoreFile, false) {
		t.Errorf("%s at the root is ignored; it must always be protected", IgnoreFile)
	}
	if !m.Match("sub/"+IgnoreFile, false) {
		t.Errorf("sub/%s is not ignored by \"*\"; only the root one is special", IgnoreFile)
	}
	if !m.Match(IgnoreFile, true) {
		t.Errorf("a directory named %s is not ignored by \"*\"; only the file is special", IgnoreFile)
	}
	for rel, want := range map[string]bool{IgnoreFile: true, "sub/" + IgnoreFile: false, IgnoreFile + "x": false, "/" + IgnoreFile: false} {
		if got := IsIgnoreFile(rel); got != want {
			t.Errorf("IsIgnoreFile(%q) = %v, want %v", rel, got, want)
		}
	}
}

func writeIgnoreFile(t *testing.T, root, content string) string {
	t.Helper()
	name := filepath.Join(root, IgnoreFile)
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestLoadMatcherPutsTheFileAfterTheConfig(t *testing.T) {
	root := t.TempDir()
	writeIgnoreFile(t, root, "!important.tmp\n*.bak\n")
	m, err := LoadMatcher(root, []string{"*.tmp", "!keep.bak"})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"x.tmp":         true,  // config
		"important.tmp": false, // the file re-includes what the config excludes
		"x.bak":         true,  // file
		"keep.bak":      true,  // the config's negation comes before the file's pattern
		"other.txt":     false,
	} {
		if got := m.Match(p, false); got != want {
			t.Errorf("Match(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestLoadMatcherWithoutIgnoreFileUsesTheConfig(t *testing.T) {
	m, err := LoadMatcher(t.TempDir(), []string{"*.tmp"})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Match("a.tmp", false) || m.Match("a.txt", false) {
		t.Error("config patterns not applied when the folder has no ignore file")
	}
}

func TestLoadMatcherErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, root string)
		config  []string
		line    int    // 0: the whole file
		bad     bool   // wraps ErrBadPattern
		mention string // in the message
	}{
		{
			name:    "bad pattern names its line",
			setup:   func(t *testing.T, root string) { writeIgnoreFile(t, root, "ok.tmp\n\n# comment\n[a-\nlater\n") },
			line:    4,
			bad:     true,
			mention: `"[a-"`,
		},
		{
			name:    "bad pattern on a CRLF line after a byte order mark",
			setup:   func(t *testing.T, root string) { writeIgnoreFile(t, root, "\uFEFFa\r\nb\\\r\n") },
			line:    2,
			bad:     true,
			mention: `"b\\"`,
		},
		{
			name: "a directory in its place is unreadable",
			setup: func(t *testing.T, root string) {
				if err := os.Mkdir(filepath.Join(root, IgnoreFile), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			mention: "is a directory",
		},
		{
			name: "a dangling symlink is not a missing file",
			setup: func(t *testing.T, root string) {
				if err := os.Symlink("nowhere", filepath.Join(root, IgnoreFile)); err != nil {
					t.Fatal(err)
				}
			},
			mention: "no such file",
		},
		{
			name:    "a file over the size limit",
			setup:   func(t *testing.T, root string) { writeIgnoreFile(t, root, strings.Repeat("x\n", maxIgnoreFile/2+1)) },
			mention: "larger than",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(t, root)
			_, err := LoadMatcher(root, tt.config)
			var fe *IgnoreFileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want an *IgnoreFileError", err)
			}
			file := filepath.Join(root, IgnoreFile)
			if fe.Path != file || fe.Line != tt.line || errors.Is(err, ErrBadPattern) != tt.bad {
				t.Errorf("err = %#v, want path %s, line %d, ErrBadPattern %v", fe, file, tt.line, tt.bad)
			}
			where := file
			if tt.line > 0 {
				where = fmt.Sprintf("%s:%d:", file, tt.line)
			}
			if msg := err.Error(); !strings.Contains(msg, where) || !strings.Contains(msg, tt.mention) {
				t.Errorf("message %q does not name %q and %q", msg, where, tt.mention)
			}
		})
	}

	// A bad config pattern is the config's fault, not the file's.
	root := t.TempDir()
	writeIgnoreFile(t, root, "ok\n")
	_, err := LoadMatcher(root, []string{"[a-"})
	var fe *IgnoreFileError
	if !errors.Is(err, ErrBadPattern) || errors.As(err, &fe) || !strings.Contains(err.Error(), `"[a-"`) {
		t.Errorf("bad config pattern: err = %v, want ErrBadPattern naming it and no file", err)
	}
}

func TestScanHonoursIgnoreFile(t *testing.T) {
	tr := tree{t: t, root: t.TempDir()}
	tr.file(IgnoreFile, []byte("*.log\n!keep.log\nbuild/\n!important.tmp\n"), 0o644)
	for _, p := range []string{"a.log", "keep.log", "d/b.log", "d/keep.log", "build/out", "x.tmp", "important.tmp", ".hidden", "d/" + IgnoreFile, "plain.txt"} {
		tr.file(p, []byte(p), 0o644)
	}
	ignore, err := LoadMatcher(tr.root, []string{"*.tmp", ".*"})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Scan(context.Background(), tr.root, ScanOptions{Ignore: ignore})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		paths = append(paths, e.Path)
		if _, err := Stat(tr.root, e.Path, nil, ignore); err != nil {
			t.Errorf("Stat(%q) disagrees with Scan: %v", e.Path, err)
		}
	}
	// .vigilignore is protected although ".*" matches it; d/.vigilignore is an
	// ordinary file that ".*" excludes.
	want := []string{IgnoreFile, "d", "d/keep.log", "important.tmp", "keep.log", "plain.txt"}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths:\n got  %q\n want %q", paths, want)
	}
}

func FuzzMatcher(f *testing.F) {
	for _, tc := range gitignoreCases {
		for _, p := range slices.Concat(tc.ignored, tc.kept) {
			f.Add(strings.Join(tc.patterns, "\n"), strings.TrimSuffix(p, "/"), strings.HasSuffix(p, "/"))
		}
	}
	f.Add(ignoreFileContent, "d/y.log", false)
	f.Fuzz(func(t *testing.T, patterns, rel string, isDir bool) {
		// As a config list, one pattern per line.
		m, err := NewMatcher(strings.Split(patterns, "\n"))
		if err != nil && !errors.Is(err, ErrBadPattern) {
			t.Fatalf("error not wrapping ErrBadPattern: %v", err)
		}
		// As an ignore file.
		fm := &Matcher{}
		if err := fm.addFile("fuzz", []byte(patterns)); err != nil && !errors.Is(err, ErrBadPattern) {
			t.Fatalf("error not wrapping ErrBadPattern: %v", err)
		}
		for _, m := range []*Matcher{m, fm} {
			got := m.Match(rel, isDir)
			m.matchOne(rel, isDir)
			// Everything below an ignored directory is ignored.
			if isDir && got && !m.Match(rel+"/child", false) {
				t.Fatalf("%q is an ignored directory but %q/child is not", rel, rel)
			}
		}
	})
}
