package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestOfNamesVersionRevisionAndModifiedTree(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/vigil-mesh/vigil", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "32a99bde3b3bd91dcbdba79ad1c70f6907157e84"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	got := Of(bi)
	want := Build{Version: "v1.2.3", Commit: "32a99bde3b3bd91dcbdba79ad1c70f6907157e84-dirty", GoVersion: "go1.26.8"}
	if got != want {
		t.Errorf("modified tree: Of = %+v, want %+v", got, want)
	}

	bi.Settings[2].Value = "false"
	if got := Of(bi).Commit; got != "32a99bde3b3bd91dcbdba79ad1c70f6907157e84" {
		t.Errorf("clean tree: commit = %q, want the bare revision", got)
	}
}

func TestOfSaysDevelAndUnknownWithoutStampedInformation(t *testing.T) {
	want := Build{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version()}
	if got := Of(nil); got != want {
		t.Errorf("no build information: Of = %+v, want %+v", got, want)
	}
	bi := &debug.BuildInfo{GoVersion: runtime.Version(), Main: debug.Module{Path: "github.com/vigil-mesh/vigil", Version: "(devel)"}}
	if got := Of(bi); got != want {
		t.Errorf("build without VCS stamp: Of = %+v, want %+v", got, want)
	}
}
