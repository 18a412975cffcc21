package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/vigil-mesh/vigil/node/config"

	"github.com/spf13/cobra"
)

// Exit codes of the vigil command.
const (
	exitOK      = 0 // success
	exitFailure = 1 // runtime failure
	exitUsage   = 2 // bad usage (flags, arguments) or bad config
)

// usageError is an error of the caller: a bad flag, argument or home
// directory. It makes vigil exit with code 2.
type usageError struct {
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf returns a *usageError; %w wraps as in fmt.Errorf.
func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// exitCode maps an error returned by a command to the process exit code:
// 0 for nil, 2 for a *usageError or a *config.Error anywhere in its
// chain, 1 for anything else.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	var ce *config.Error
	if errors.As(err, &ue) || errors.As(err, &ce) {
		return exitUsage
	}
	return exitFailure
}

// flagError turns cobra's flag parsing errors into usage errors that name
// the command.
func flagError(c *cobra.Command, err error) error {
	return usageErrorf("%s: %w", commandName(c), err)
}

// errorLine renders err as the single line printed after "vigil: ".
func errorLine(err error) string {
	s := strings.TrimSpace(err.Error())
	s = strings.ReplaceAll(s, "\r", "")
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return dropRepeatedPrefixes(strings.Join(lines, "; "))
}

// prefixWord is a "word: " prefix of an error message: a command or package
// name such as "restore" or "control".
var prefixWord = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// dropRepeatedPrefixes removes a prefix word that directly repeats the one
// before it: a command that names itself wrapping an error of the package
// of the same name gives "restore: restore: no index ...", printed as
// "restore: no index ...". Only the leading run of prefix words is looked
// at, so file names and values later in the line are left alone.
func dropRepeatedPrefixes(s string) string {
	var out []string
	rest := s
	for {
		word, after, ok := strings.Cut(rest, ": ")
		if !ok || !prefixWord.MatchString(word) {
			break
		}
		if len(out) == 0 || out[len(out)-1] != word {
			out = append(out, word)
		}
		rest = after
	}
	return strings.Join(append(out, rest), ": ")
}
