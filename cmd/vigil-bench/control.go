package main

import "github.com/vigil-mesh/vigil/node/control"

// The benchmark talks to each node's control endpoint (HTTP + JSON on its
// unix socket) with the node's own client, the one `vigil lag` and `vigil
// status` use.
type (
	controlClient = control.Client
	lagReport     = control.LagReport
	replicaReport = control.ReplicaReport
)

func newControlClient(sock string) *controlClient { return control.NewClient("unix", sock) }
