package baseline

// Ignore patterns follow gitignore(5). The wildcard engine ("*", "?", "**",
// bracket expressions, "\" escapes) is github.com/bmatcuk/doublestar/v4; the
// gitignore rules around it (comments, "!" negation with the last matching
// pattern deciding, anchoring, "dir/", excluded parents) are in this file,
// together with a small translation of git's glob dialect into doublestar's.
//
// Why not a complete gitignore library: of those the Go module proxy serves,
// none is both complete and lean.
//   - go-git/v5 plumbing/format/gitignore (stable, maintained) matches with
//     filepath.Match, so no "[!...]" or POSIX classes; its "**" does not
//     backtrack ("a/**/b/c" misses "a/b/x/b/c"); "foo/**" matches "foo"
//     itself; a pattern also matches everything below what it names, so
//     "!a/b" re-includes "a/b/c" where git does not; a bad pattern silently
//     matches nothing. It adds go-git (4 MB of source) plus gcfg, go-billy,
//     go-context and warnings to go.mod.
//   - go-git/v6 ports git's wildmatch but is only served as a beta, keeps the
//     "**" and below-what-it-names behaviour above, and adds go-git, gcfg,
//     go-billy and sha1cd.
//   - sabhiram/go-gitignore (and its fork crackcomm/go-gitignore),
//     shibumi/go-pathspec and monochromegane/go-gitignore are small but
//     translate patterns to regular expressions or filepath.Match, are
//     unmaintained, and each gets basic cases wrong (between them: no
//     directory-only rule, regexp metacharacters unescaped, the first
//     negation winning, "docs/x" unanchored, no "**").
//   - denormal/go-gitignore, boyter/gocodewalker, git-pkgs/gitignore and
//     codeglyph/go-dotignore are not served.
//
// doublestar is maintained, has no dependencies of its own (one line in
// go.mod), reports malformed patterns, and its "*", "?", "**" and classes
// never cross "/" except "**" as a whole path element, as in git's
// wildmatch. The translation below escapes "{" and "}" (literal in git,
// alternation in doublestar), rewrites git's bracket expressions (a leading
// "]", POSIX classes such as "[:digit:]", never matching "/"), and turns a
// trailing "/**" into "/**/*" (git: everything inside, not the directory
// itself). The tests compare a table of patterns and paths with what
// `git check-ignore` says. Two deliberate differences from git: a bracket
// expression or "?" stands for one character, not one byte, of a UTF-8 name;
// and "**" glued to a name and followed by "/" ("a**/b") is a plain "*" as
// gitignore(5) says, where git's matcher lets it cross directories.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
)

// IgnoreFile is the name of a folder's own ignore file, read at the folder
// root only (a file of that name in a subdirectory is ordinary data). It is
// itself always protected: no pattern excludes it, so a restore brings back
// the rules along with the data.
const IgnoreFile = ".vigilignore"

// maxIgnoreFile bounds what LoadMatcher reads of an IgnoreFile.
const maxIgnoreFile = 1 << 20

// IsIgnoreFile reports whether rel (relative to the folder root,
// slash-separated) is the folder's IgnoreFile, whose change calls for a new
// Matcher from LoadMatcher.
func IsIgnoreFile(rel string) bool { return rel == IgnoreFile }

// Matcher holds compiled ignore patterns: a folder's `ignore:` list and, from
// LoadMatcher, its IgnoreFile. A nil *Matcher matches nothing. A Matcher is
// immutable and safe for concurrent use.
type Matcher struct {
	rules []rule
}

type rule struct {
	glob     string // doublestar syntax
	negate   bool   // "!": a match re-includes
	dirOnly  bool   // trailing "/": matches directories only
	anchored bool   // matched against the whole relative path, else the base name
	literal  bool   // glob has no wildcard or escape: compare as a string
	never    bool   // matches no path (a bracket expression that only holds "/")
}

// NewMatcher compiles the patterns of a folder's `ignore:` list, in order,
// with gitignore semantics (see the package documentation). Each entry is one
// pattern: white space around it is dropped (a trailing space that belongs to
// a name is written "\ "), and an empty entry or one starting with "#" (a
// comment in an ignore file; "\#" for a name starting with "#") is refused.
//
// The error names the first bad pattern and wraps ErrBadPattern.
func NewMatcher(patterns []string) (*Matcher, error) {
	m := &Matcher{rules: make([]rule, 0, len(patterns))}
	for _, raw := range patterns {
		p := trimTrailingSpace(strings.TrimLeft(raw, " \t\r\n"), " \t\r\n")
		var why string
		var r rule
		switch {
		case p == "":
			why = "empty"
		case p[0] == '#':
			why = `starts with "#", which marks a comment in an ignore file (write \# for a name starting with #)`
		default:
			r, why = compile(p)
		}
		if why != "" {
			return nil, fmt.Errorf("%w %q: %s", ErrBadPattern, raw, why)
		}
		m.rules = append(m.rules, r)
	}
	return m, nil
}

// LoadMatcher builds the Matcher of the folder at root: the config patterns
// first, then those of root's IgnoreFile, so that the file can re-include
// ("!") what the config excludes. A missing IgnoreFile adds nothing. The file
// is read as git reads a .gitignore: one pattern per line, blank lines and
// lines starting with "#" skipped, trailing spaces dropped unless escaped
// ("\ "), leading spaces kept, a UTF-8 byte order mark and CRLF line ends
// accepted. A symlink is followed.
//
// A bad config pattern gives NewMatcher's error; an IgnoreFile that cannot be
// read, or holds a bad pattern, gives an *IgnoreFileError naming the file
// (and the line), wrapping ErrBadPattern for a bad pattern.
func LoadMatcher(root string, patterns []string) (*Matcher, error) {
	m, err := NewMatcher(patterns)
	if err != nil {
		return nil, err
	}
	name := filepath.Join(root, IgnoreFile)
	data, err := readIgnoreFile(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, lerr := os.Lstat(name); lerr != nil {
				return m, nil // no file (a dangling symlink is an error)
			}
		}
		return nil, &IgnoreFileError{Path: name, Err: err}
	}
	if err := m.addFile(name, data); err != nil {
		return nil, err
	}
	return m, nil
}

// addFile appends the patterns of an ignore file's content; name is only
// used in errors.
func (m *Matcher) addFile(name string, data []byte) error {
	for n, p := range ignoreFileLines(data) {
		r, why := compile(p)
		if why != "" {
			return &IgnoreFileError{Path: name, Line: n, Err: fmt.Errorf("%w %q: %s", ErrBadPattern, p, why)}
		}
		m.rules = append(m.rules, r)
	}
	return nil
}

func readIgnoreFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIgnoreFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxIgnoreFile {
		return nil, fmt.Errorf("larger than %d bytes", maxIgnoreFile)
	}
	return data, nil
}

// ignoreFileLines yields the patterns of an ignore file's content with their
// 1-based line numbers, skipping what git skips.
func ignoreFileLines(data []byte) func(yield func(int, string) bool) {
	return func(yield func(int, string) bool) {
		s := strings.TrimPrefix(string(data), "\uFEFF")
		n := 0
		for line := range strings.Lines(s) {
			n++
			line = strings.TrimSuffix(line, "\n")
			line = strings.TrimSuffix(line, "\r")
			if line == "" || line[0] == '#' {
				continue
			}
			if p := trimTrailingSpace(line, " "); p != "" && !yield(n, p) {
				return
			}
		}
	}
}

// trimTrailingSpace drops trailing bytes in cutset, stopping at one escaped
// by a backslash (git's rule for trailing spaces).
func trimTrailingSpace(s, cutset string) string {
	for len(s) > 0 && strings.IndexByte(cutset, s[len(s)-1]) >= 0 {
		slashes := 0
		for j := len(s) - 2; j >= 0 && s[j] == '\\'; j-- {
			slashes++
		}
		if slashes%2 == 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}

// compile turns one gitignore pattern (already trimmed) into a rule, or
// says why it cannot.
func compile(p string) (rule, string) {
	var r rule
	if p[0] == '!' {
		r.negate = true
		p = p[1:]
	}
	if strings.HasSuffix(p, "/") {
		r.dirOnly = true
		p = p[:len(p)-1]
	}
	if strings.Contains(p, "/") {
		r.anchored = true
		p = strings.TrimPrefix(p, "/")
	}
	if p == "" {
		return r, "matches nothing"
	}
	if !utf8.ValidString(p) {
		return r, "is not valid UTF-8"
	}
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return r, "empty path element"
	}
	glob, never, why := translate(p)
	if why != "" {
		return r, why
	}
	if r.anchored && strings.HasSuffix(glob, "/**") {
		glob += "/*" // everything inside, not the directory itself
	}
	if !never && !doublestar.ValidatePattern(glob) {
		return r, "syntax error"
	}
	r.glob, r.never = glob, never
	r.literal = !strings.ContainsAny(glob, `*?[\`)
	return r, ""
}

// translate rewrites a gitignore glob in doublestar's syntax. never is set
// when a bracket expression can match no character.
func translate(p string) (glob string, never bool, why string) {
	var b strings.Builder
	for i := 0; i < len(p); {
		switch c := p[i]; c {
		case '\\':
			if i+1 == len(p) {
				return "", false, "ends with an unescaped backslash"
			}
			_, n := utf8.DecodeRuneInString(p[i+1:])
			if p[i+1] != '/' { // an escaped "/" is a "/"
				b.WriteByte('\\')
			}
			b.WriteString(p[i+1 : i+1+n])
			i += 1 + n
		case '*':
			// git reads a run of stars as "**"; doublestar misreads runs of
			// three or more.
			n := len(p[i:]) - len(strings.TrimLeft(p[i:], "*"))
			b.WriteString("**"[:min(n, 2)])
			i += n
		case '{', '}':
			b.WriteByte('\\')
			b.WriteByte(c)
			i++
		case '[':
			n, empty, why := bracket(&b, p[i:])
			if why != "" {
				return "", false, why
			}
			never = never || empty
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), never, ""
}

// bracket translates the bracket expression at the start of s (s[0] is
// '[') as git's wildmatch reads it, appends it to b and returns its length
// in s. empty reports a positive expression left with no member: it can
// match nothing. A bracket expression never matches "/".
func bracket(b *strings.Builder, s string) (n int, empty bool, why string) {
	type span struct{ lo, hi rune }
	var members []span
	i := 1
	negate := false
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		negate = true
		i++
	}
	prev := rune(-1) // the previous single member, start of a possible range
	for first := true; ; first = false {
		if i >= len(s) {
			return 0, false, "unterminated ["
		}
		if s[i] == ']' && !first {
			i++
			break
		}
		switch {
		case s[i] == '[' && i+1 < len(s) && s[i+1] == ':':
			end := strings.IndexByte(s[i+2:], ']')
			if end < 0 {
				return 0, false, "unterminated ["
			}
			if end == 0 || s[i+2+end-1] != ':' {
				// No ":]": a literal '[' and read on from the ':'.
				members = append(members, span{'[', '['})
				prev = '['
				i++
				continue
			}
			name := s[i+2 : i+2+end-1]
			in, ok := posixClasses[name]
			if !ok {
				return 0, false, fmt.Sprintf("unknown character class [:%s:]", name)
			}
			for c := rune(0); c < utf8.RuneSelf; c++ {
				if in(c) {
					members = append(members, span{c, c})
				}
			}
			prev = -1
			i += 2 + end + 1
		case s[i] == '-' && prev >= 0 && i+1 < len(s) && s[i+1] != ']':
			hi, w := bracketChar(s[i+1:])
			if w == 0 {
				return 0, false, "unterminated ["
			}
			members[len(members)-1].hi = hi
			prev = -1
			i += 1 + w
		default:
			c, w := bracketChar(s[i:])
			if w == 0 {
				return 0, false, "unterminated ["
			}
			members = append(members, span{c, c})
			prev = c
			i += w
		}
	}

	var body strings.Builder
	for _, m := range members {
		if m.lo > m.hi {
			continue // a reversed range matches nothing
		}
		// Keep "/" out: split a span around it.
		if m.lo <= '/' && '/' <= m.hi {
			if m.lo < '/' {
				writeSpan(&body, m.lo, '/'-1)
			}
			if m.hi > '/' {
				writeSpan(&body, '/'+1, m.hi)
			}
			continue
		}
		writeSpan(&body, m.lo, m.hi)
	}
	if !negate && body.Len() == 0 {
		// Nothing to match: keep a valid placeholder, the rule is marked never.
		b.WriteString(`[\/]`)
		return i, true, ""
	}
	b.WriteByte('[')
	if negate {
		b.WriteString(`!\/`)
	}
	b.WriteString(body.String())
	b.WriteByte(']')
	return i, false, ""
}

// bracketChar reads one member of a bracket expression, "\x" or a
// character, and returns it with its width in s (0 at the end of s).
func bracketChar(s string) (rune, int) {
	esc := 0
	if s != "" && s[0] == '\\' {
		esc = 1
	}
	if len(s) <= esc {
		return 0, 0
	}
	c, w := utf8.DecodeRuneInString(s[esc:])
	return c, esc + w
}

func writeSpan(b *strings.Builder, lo, hi rune) {
	writeClassChar(b, lo)
	if hi != lo {
		b.WriteByte('-')
		writeClassChar(b, hi)
	}
}

func writeClassChar(b *strings.Builder, c rune) {
	b.WriteByte('\\')
	b.WriteRune(c)
}

// posixClasses are the classes git's wildmatch knows, over ASCII.
var posixClasses = map[string]func(rune) bool{
	"alnum":  func(c rune) bool { return isAlpha(c) || isDigit(c) },
	"alpha":  isAlpha,
	"blank":  func(c rune) bool { return c == ' ' || c == '\t' },
	"cntrl":  func(c rune) bool { return c < ' ' || c == 0x7f },
	"digit":  isDigit,
	"graph":  func(c rune) bool { return c > ' ' && c < 0x7f },
	"lower":  func(c rune) bool { return c >= 'a' && c <= 'z' },
	"print":  func(c rune) bool { return c >= ' ' && c < 0x7f },
	"punct":  func(c rune) bool { return c > ' ' && c < 0x7f && !isAlpha(c) && !isDigit(c) },
	"space":  func(c rune) bool { return c == ' ' || (c >= '\t' && c <= '\r') },
	"upper":  func(c rune) bool { return c >= 'A' && c <= 'Z' },
	"xdigit": func(c rune) bool { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') },
}

func isAlpha(c rune) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c rune) bool { return c >= '0' && c <= '9' }

// Match reports whether rel (slash-separated, relative to the folder root)
// is ignored: it or a directory above it is excluded. A path is excluded when
// the last pattern that matches it is not a "!" pattern; as in git, nothing
// below an excluded directory can be re-included. The folder's IgnoreFile is
// never ignored.
func (m *Matcher) Match(rel string, isDir bool) bool {
	if m == nil || len(m.rules) == 0 {
		return false
	}
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && m.excluded(rel[:i], true) {
			return true
		}
	}
	return m.excluded(rel, isDir)
}

// matchOne tests rel alone, not its parents (Scan does not descend into
// ignored directories, so it needs no more).
func (m *Matcher) matchOne(rel string, isDir bool) bool {
	return m != nil && m.excluded(rel, isDir)
}

// excluded applies the rules to rel alone: the last rule that matches it
// decides.
func (m *Matcher) excluded(rel string, isDir bool) bool {
	if !isDir && rel == IgnoreFile {
		return false
	}
	base := rel[strings.LastIndexByte(rel, '/')+1:]
	for i := len(m.rules) - 1; i >= 0; i-- {
		if m.rules[i].match(rel, base, isDir) {
			return !m.rules[i].negate
		}
	}
	return false
}

func (r *rule) match(rel, base string, isDir bool) bool {
	if r.never || (r.dirOnly && !isDir) {
		return false
	}
	name := base
	if r.anchored {
		name = rel
	}
	if r.literal {
		return name == r.glob
	}
	ok, _ := doublestar.Match(r.glob, name)
	return ok
}
