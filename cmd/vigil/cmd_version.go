package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/vigil-mesh/vigil/internal/buildinfo"
)

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print the version, commit and Go version of this binary",
		Long: "version prints what the go command stamped into this binary: the module version (a\n" +
			"release, a pseudo-version for a build in a git clone, \"(devel)\" when nothing was\n" +
			"stamped), the commit it was built from (\"-dirty\" when the tree had changes; \"unknown\"\n" +
			"when the build carries no VCS information) and the Go version. --json prints\n" +
			"{\"version\": ..., \"commit\": ..., \"go\": ...}. `vigil --version` prints the same as\n" +
			"`vigil version`.",
		Args:        cobra.NoArgs,
		Annotations: map[string]string{annotNoHome: "true"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(cmd.OutOrStdout(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: {\"version\": ..., \"commit\": ..., \"go\": ...}")
	return cmd
}

func runVersion(stdout io.Writer, asJSON bool) error {
	b := buildinfo.Read()
	text := versionText(b)
	if asJSON {
		text = versionJSON(b)
	}
	_, err := io.WriteString(stdout, text)
	return err
}

// versionJSON formats `vigil version --json` like `vigil id --json`:
// {"version": "...", "commit": "...", "go": "..."} on one line.
func versionJSON(b buildinfo.Build) string {
	q := func(s string) string {
		out, _ := json.Marshal(s)
		return string(out)
	}
	return fmt.Sprintf(`{"version": %s, "commit": %s, "go": %s}`+"\n", q(b.Version), q(b.Commit), q(b.GoVersion))
}

// versionText is the output of `vigil version` and `vigil --version`.
func versionText(b buildinfo.Build) string {
	return fmt.Sprintf("vigil %s\ncommit: %s\ngo: %s %s/%s\n", b.Version, b.Commit, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}
