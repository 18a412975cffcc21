// Package watch is the folder watcher, one per protected folder. It
// watches the folder recursively with fsnotify (one inotify watch per directory), aggregates
// events per path inside its own goroutine and hands settled batches of
// relative paths to the agent, which stats each path and diffs it against
// its index. The watcher never reads or hashes file contents.
//
// Settling. Every event marks its path pending with the time of its first
// and of its latest event. A pending path is emitted once no event touched
// it for Options.Quiet, or at the latest Options.MaxDelay after
// its first pending event (a file that is written continuously is still
// captured). One timer is armed for the earliest deadline of all pending
// paths. Batches that the consumer has not yet received are merged with
// newly settled paths, so a slow consumer never stalls the event loop.
//
// Groups. Settling decides when the agent looks; what it then reads is
// everything that changed, settled or not: Take drains the kernel queue
// (up to a marker event in Options.MarkerDir) and hands over every pending
// path, so that files changed together are read together, and the agent
// calls it again after its reads to learn what changed meanwhile. Requeue
// gives back paths that changed after the agent read them; they settle
// like any other (docs/capture.md).
//
// Directories. A directory that appears (created or moved in) is watched at
// once and then walked: every entry found in it is emitted, because files
// may have been created in it before its watch existed. A directory that is
// removed or moved away loses its watches (and those of its subdirectories)
// and its path is emitted; the agent handles the subtree. Ignored paths
// (Options.Ignore) are neither watched nor emitted.
//
// Watch limit. When inotify refuses a watch because the per-user watch
// limit is reached (ENOSPC), or no inotify instance can be created at all
// (EMFILE, instance limit), the watcher logs one warning naming the sysctl
// that fixes it and puts the directories it cannot watch on a polling
// fallback: every PollInterval it compares name, size, mtime and mode of
// their direct children with the previous scan and emits what differs.
// Directories stay on polling until the watcher restarts.
//
// Overflow. When the kernel event queue overflows, events were lost: the
// watcher logs a warning, re-synchronises its watches with the tree and
// emits Batch{Rescan: true}.
package watch
