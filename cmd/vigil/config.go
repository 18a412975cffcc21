package main

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-mesh/vigil/mesh"
	"github.com/vigil-mesh/vigil/node/config"
)

// configFileName is the config file inside the home directory.
const configFileName = "vigil.yaml"

// maxConfigSize bounds what loadConfig reads; a config is a few KiB.
const maxConfigSize = 16 << 20

// loadConfig reads home/vigil.yaml, fills in defaults and validates it.
// Every problem with the file (missing, YAML syntax, unknown field, wrong
// type, invalid value) is a *config.Error naming the file, and the line
// and field when known; an unreadable file is a plain error.
func loadConfig(home string) (*config.Config, error) {
	path := filepath.Join(home, configFileName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &config.Error{File: path, Msg: fmt.Sprintf("no such file; run `vigil init --home %s` first", home), Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, &config.Error{File: path, Msg: fmt.Sprintf("file is larger than %d bytes", maxConfigSize)}
	}
	return parseConfig(path, data)
}

// loadClientConfig loads the config of a command that only asks the
// running node. A file that decodes but fails validation still gives the
// control address: the node runs with the config it loaded, and lag or
// status must go on answering while the file is being fixed. The problem
// is printed to stderr as a warning.
func loadClientConfig(home string, stderr io.Writer) (*config.Config, error) {
	cfg, err := loadConfig(home)
	var ce *config.Error
	if err == nil || !errors.As(err, &ce) {
		return cfg, err
	}
	path := filepath.Join(home, configFileName)
	data, rerr := os.ReadFile(path)
	if rerr != nil || len(data) > maxConfigSize {
		return nil, err
	}
	loose, lerr := decodeConfig(path, data)
	if lerr != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "vigil: warning: %s\nvigil: warning: the running node keeps the config it loaded; `vigil reload` applies the file once fixed\n", errorLine(err))
	return loose, nil
}

// parseConfig decodes a config document, fills in defaults and validates it.
// path names the file in errors, and its directory is the config's Home.
func parseConfig(path string, data []byte) (*config.Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlConfigError(path, err)
	}
	if len(doc.Content) == 0 {
		return nil, &config.Error{File: path, Msg: "the file is empty; it needs at least a node: section with a name"}
	}
	lines := map[string]int{}
	if err := checkYAML(path, doc.Content[0], reflect.TypeOf(config.Config{}), "", lines); err != nil {
		return nil, err
	}

	cfg, err := decodeConfig(path, data)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) && ce.Line == 0 {
			ce.Line = lineOf(lines, ce.Field)
		}
		return nil, err
	}
	if err := checkNotSelf(cfg, lines); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeConfig decodes a config document and fills in defaults, with no
// validation.
func decodeConfig(path string, data []byte) (*config.Config, error) {
	cfg := &config.Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlConfigError(path, err)
	}
	cfg.File = path
	cfg.Home = filepath.Dir(path)
	cfg.SetDefaults()
	return cfg, nil
}

// checkNotSelf refuses a config that lists this node's own peer ID (read
// from identity.key next to vigil.yaml) in peers: the node would dial and
// wait for itself as a backup forever. Without a readable key there is
// nothing to compare; the commands that need the key say what is wrong
// with it.
func checkNotSelf(cfg *config.Config, lines map[string]int) error {
	_, self, err := mesh.LoadKey(cfg.IdentityPath())
	if err != nil {
		return nil
	}
	for i, p := range cfg.Peers {
		if id, err := peer.Decode(p.ID); err == nil && id == self {
			field := fmt.Sprintf("peers[%d].id", i)
			return &config.Error{File: cfg.File, Line: lineOf(lines, field), Field: field, Value: p.ID,
				Msg: fmt.Sprintf("is this node's own peer ID (from %s); peers lists the other nodes", cfg.IdentityPath())}
		}
	}
	return nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?(?:unmarshal errors:\s*)?line (\d+): (.*)$`)

// yamlConfigError turns an error of the YAML library into a ConfigError
// naming the file and, when the library gives one, the line.
func yamlConfigError(path string, err error) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimSpace(msg)
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &config.Error{File: path, Line: line, Msg: m[2], Err: err}
	}
	return &config.Error{File: path, Msg: strings.TrimPrefix(msg, "yaml: "), Err: err}
}

// checkYAML walks the document against the Go type it decodes into, so that
// an unknown field, a value of the wrong shape or an invalid duration is
// reported with its full field path (e.g. "folders[0].backup_to") and line
// rather than the YAML library's Go type names. It records the line of each
// field path in lines.
func checkYAML(path string, n *yaml.Node, t reflect.Type, field string, lines map[string]int) error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if _, ok := lines[field]; !ok {
		lines[field] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil // absent value: the zero value or the default
	}
	where := field // for messages
	if where == "" {
		where = "the top level"
	}
	bad := func(msg string, value string) error {
		return &config.Error{File: path, Line: n.Line, Field: field, Value: value, Msg: msg}
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		if n.Kind != yaml.ScalarNode {
			return bad("must be a single value, not a "+kindName(n.Kind), "")
		}
		v := reflect.New(t).Interface().(encoding.TextUnmarshaler)
		if err := v.UnmarshalText([]byte(n.Value)); err != nil {
			return &config.Error{File: path, Line: n.Line, Field: field, Value: n.Value, Msg: err.Error(), Err: err}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			msg := fmt.Sprintf("must be a mapping of key: value lines, not a %s", kindName(n.Kind))
			if field == "" {
				msg = "the top level " + msg
			}
			return &config.Error{File: path, Line: n.Line, Field: field, Value: scalarValue(n), Msg: msg}
		}
		fields, names := yamlFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				continue // merge key: resolved by the decoder
			}
			sub := joinField(field, k.Value)
			if first, dup := seen[k.Value]; dup {
				return &config.Error{File: path, Line: k.Line, Field: sub, Msg: fmt.Sprintf("given twice (first on line %d)", first)}
			}
			seen[k.Value] = k.Line
			sf, ok := fields[k.Value]
			if !ok {
				return &config.Error{File: path, Line: k.Line, Field: sub,
					Msg: fmt.Sprintf("unknown field; fields of %s: %s", where, strings.Join(names, ", "))}
			}
			lines[sub] = k.Line
			if err := checkYAML(path, v, sf.Type, sub, lines); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return bad("must be a list, e.g. [a, b] or lines starting with '- '", scalarValue(n))
		}
		for i, e := range n.Content {
			if err := checkYAML(path, e, t.Elem(), fmt.Sprintf("%s[%d]", field, i), lines); err != nil {
				return err
			}
		}
		return nil
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return bad("must be a single value, not a "+kindName(n.Kind), "")
		}
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode {
			return bad("must be a whole number, not a "+kindName(n.Kind), "")
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return bad("must be a whole number", n.Value)
		}
		return nil
	case reflect.Bool:
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return bad("must be true or false", scalarValue(n))
		}
		return nil
	default:
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return bad(err.Error(), scalarValue(n))
		}
		return nil
	}
}

// yamlFields returns the fields of struct type t by YAML key, and the keys in
// declaration order.
func yamlFields(t reflect.Type) (map[string]reflect.StructField, []string) {
	fields := map[string]reflect.StructField{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		fields[name] = sf
		names = append(names, name)
	}
	return fields, names
}

func joinField(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// lineOf returns the line of field, or of its nearest enclosing field that has
// a known line (a missing field is reported at its section), or 0.
func lineOf(lines map[string]int, field string) int {
	for f := field; f != ""; {
		if l, ok := lines[f]; ok && l > 0 {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	default:
		return "document"
	}
}

func scalarValue(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}
