//go:build !unix

package baseline

import "io/fs"

const openFlags = 0

func fileID(fs.FileInfo) (ino, dev uint64) { return 0, 0 }

func kernelAtLeast(int, int) bool { return false }
