package replica

import (
	"bufio"
	"io"

	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/wire"
)

func writeFrame(w io.Writer, typ byte, payload []byte) error { return mesh.WriteFrame(w, typ, payload) }

// readFrame reads an answer frame from the source (at most wire.MaxFrame).
func readFrame(r *bufio.Reader) (byte, []byte, error) { return mesh.ReadFrame(r, wire.MaxFrame) }
