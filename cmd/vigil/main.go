// Command vigil runs and inspects a node of a vigil continuous data
// protection mesh. See README.md for the commands and the config file.
//
// Each command lives in a file of its own (cmd_<name>.go) and is added in
// newRootCmd with one root.AddCommand(newXCmd()) line. A command reaches the
// global flags through globalsFrom(cmd): Home, LoadConfig, Logger. Errors
// returned from RunE are printed as one line "vigil: <message>"; a
// *usageError or a *config.Error exits 2, any other error exits 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-mesh/vigil/internal/buildinfo"

	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/node/config"
)

func init() {
	// A subcommand that defines its own PersistentPreRunE must not skip the
	// root's, which checks the global flags.
	cobra.EnableTraverseRunHooks = true
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the vigil command line args and returns the exit code. Errors
// are printed to stderr as one line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root, g := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	g.stderr = stderr
	err := root.ExecuteContext(context.WithValue(ctx, globalsKey{}, g))
	if err == nil {
		return exitOK
	}
	if !g.started {
		// Failed before any command ran: unknown command, bad arguments,
		// bad flags. All are the caller's.
		var ue *usageError
		if !errors.As(err, &ue) {
			err = &usageError{err: err}
		}
	}
	fmt.Fprintf(stderr, "vigil: %s\n", errorLine(err))
	return exitCode(err)
}

// newRootCmd builds the command tree. Add a command with one
// root.AddCommand(newXCmd()) line.
func newRootCmd() (*cobra.Command, *globals) {
	g := &globals{}
	root := &cobra.Command{
		Use:   "vigil",
		Short: "vigil: continuous data protection over a peer-to-peer mesh",
		Long: "vigil protects folders by copying them to backup peers and then shipping every change,\n" +
			"captured at byte level into a durable journal, to those peers as it happens.",
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: g.prepare,
	}
	// `vigil --version` prints what `vigil version` prints.
	root.Version = versionText(buildinfo.Read())
	root.SetVersionTemplate("{{.Version}}")
	pf := root.PersistentFlags()
	pf.StringVar(&g.home, "home", defaultHome(), "node home `DIR` holding vigil.yaml and identity.key ($VIGIL_HOME, else ~/.vigil)")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.SetFlagErrorFunc(flagError)

	root.AddCommand(newInitCmd())
	root.AddCommand(newIDCmd())
	root.AddCommand(newRunCmd())
	root.AddCommand(newLagCmd())
	root.AddCommand(newStatusCmd())
	root.AddCommand(newDemoCmd())
	root.AddCommand(newRestoreCmd())
	root.AddCommand(newVerifyCmd())
	root.AddCommand(newRepairCmd())
	root.AddCommand(newHistoryCmd())
	root.AddCommand(newVersionCmd())
	root.AddCommand(newPointsCmd())
	root.AddCommand(newReloadCmd())

	// `vigil completion bash|zsh|fish|powershell`: cobra's generator, made
	// here rather than at Execute so that it can be marked as needing no
	// home directory.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			markNoHome(c)
		}
	}
	return root, g
}

// markNoHome marks c and every command below it as needing no --home.
func markNoHome(c *cobra.Command) {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[annotNoHome] = "true"
	for _, sub := range c.Commands() {
		markNoHome(sub)
	}
}

// globals holds the global flags and what is derived from them.
type globals struct {
	home      string
	logFormat string
	logLevel  string
	level     slog.Level
	stderr    io.Writer
	started   bool // a command's run hooks were reached: later errors are classified by type
}

type globalsKey struct{}

// globalsFrom returns the global flags of the running command line.
func globalsFrom(cmd *cobra.Command) *globals {
	if g, ok := cmd.Context().Value(globalsKey{}).(*globals); ok {
		return g
	}
	panic("vigil: command run without globals in its context")
}

// prepare checks the global flags; it runs before every command.
// annotNoHome marks a command that needs no --home (demo builds its own).
const annotNoHome = "vigil.nohome"

func (g *globals) prepare(cmd *cobra.Command, _ []string) error {
	switch g.logFormat {
	case "text", "json":
	default:
		return usageErrorf("--log-format: must be text or json (got %q)", g.logFormat)
	}
	if err := g.level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return usageErrorf("--log-level: must be debug, info, warn or error (got %q)", g.logLevel)
	}
	if cmd.Annotations[annotNoHome] != "true" {
		home, err := resolveHome(g.home)
		if err != nil {
			return err
		}
		g.home = home
	}
	if g.stderr == nil {
		g.stderr = cmd.ErrOrStderr()
	}
	g.started = true
	return nil
}

// Home returns the absolute home directory (--home).
func (g *globals) Home() string { return g.home }

// LoadConfig loads and validates Home()/vigil.yaml.
func (g *globals) LoadConfig() (*config.Config, error) { return loadConfig(g.home) }

// LoadClientConfig loads the config of a command that only asks the
// running node (see loadClientConfig).
func (g *globals) LoadClientConfig() (*config.Config, error) {
	return loadClientConfig(g.home, g.stderr)
}

// Logger returns a logger writing to stderr in the --log-format and at the
// --log-level asked for.
func (g *globals) Logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: g.level}
	var h slog.Handler
	if g.logFormat == "json" {
		h = slog.NewJSONHandler(g.stderr, opts)
	} else {
		h = slog.NewTextHandler(g.stderr, opts)
	}
	return slog.New(h)
}

// defaultHome is $VIGIL_HOME, else ~/.vigil, else "" (then --home is required).
func defaultHome() string {
	if h := os.Getenv("VIGIL_HOME"); h != "" {
		return h
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".vigil")
	}
	return ""
}

// resolveHome makes the --home value absolute, expanding a leading "~/".
func resolveHome(h string) (string, error) {
	if strings.TrimSpace(h) == "" {
		return "", usageErrorf("--home: no home directory: pass --home DIR or set $VIGIL_HOME")
	}
	if h == "~" || strings.HasPrefix(h, "~/") {
		u, err := os.UserHomeDir()
		if err != nil {
			return "", usageErrorf("--home %q: cannot expand ~: %w", h, err)
		}
		h = filepath.Join(u, h[1:])
	}
	abs, err := filepath.Abs(h)
	if err != nil {
		return "", usageErrorf("--home %q: %w", h, err)
	}
	return abs, nil
}

// commandName is the command path without the leading "vigil ", e.g. "init".
func commandName(c *cobra.Command) string {
	p := c.CommandPath()
	if rest, ok := strings.CutPrefix(p, "vigil "); ok {
		return rest
	}
	return p
}
