// Package config is the schema of vigil.yaml: the node's own settings, the
// peers it talks to, the folders it protects and the folders it keeps for
// others, with their defaults (SetDefaults) and validation (Validate, which
// names the file, line, field and value at fault in an *Error).
//
// Only cmd/vigil reads YAML; this package holds the types, the resolution
// of relative paths against the config's directory, and the checks.
package config
