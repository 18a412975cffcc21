// Package buildinfo describes the running binary from the build
// information the go command stamps into it.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Build describes the running binary: what `vigil version` prints and the
// labels of the vigil_build_info metric.
type Build struct {
	Version   string `json:"version"` // module version: a release, a pseudo-version, or "(devel)" when not stamped
	Commit    string `json:"commit"`  // VCS revision, "-dirty" appended for a modified tree; "unknown" when not stamped
	GoVersion string `json:"go"`      // the Go toolchain that built it, e.g. go1.26.8
}

// Read returns the build information stamped into the running binary
// by the go command.
func Read() Build {
	bi, _ := debug.ReadBuildInfo()
	return Of(bi)
}

// Of extracts a Build from the go command's build information (of this
// binary, or of another one read with debug/buildinfo); nil when there is
// none.
func Of(bi *debug.BuildInfo) Build {
	b := Build{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version()}
	if bi == nil {
		return b
	}
	if v := bi.Main.Version; v != "" {
		b.Version = v
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	var rev string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		b.Commit = rev
		if modified {
			b.Commit += "-dirty"
		}
	}
	return b
}
