// Package configdoc is for tests: it reads the key tables of
// docs/configuration.md, so that tests can hold the documentation and the
// code to each other (every documented key has a test row, every default
// column matches the code), and edits a YAML config at a key path.
package configdoc

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Key is one row of a key table: | `key` | type | default | meaning |.
type Key struct {
	Name    string // e.g. "mqtt.keepalive" or "cameras[].fps"
	Type    string // e.g. "duration", "mapping", "list of strings"
	Default string // the cell as written, e.g. "`30s`", "**required**", "none"
	Line    int
}

// Required reports whether the key must be given.
func (k Key) Required() bool { return k.Default == "**required**" }

// Value is the default when the cell is one value in backticks (without
// them), and false when the cell is words (unset) or required.
func (k Key) Value() (string, bool) {
	d := k.Default
	if len(d) >= 2 && d[0] == '`' && d[len(d)-1] == '`' && !strings.Contains(d[1:len(d)-1], "`") {
		return d[1 : len(d)-1], true
	}
	return "", false
}

// Path is the key as a path into a config with one camera: cameras[] becomes cameras[0].
func (k Key) Path() string { return strings.ReplaceAll(k.Name, "[]", "[0]") }

// Keys reads every key row of the markdown file at path, in order.
func Keys(path string) ([]Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys []Key
	inTable := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			inTable = false
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case len(cells) == 4 && cells[0] == "key" && cells[2] == "default":
			inTable = true
		case !inTable || strings.HasPrefix(cells[0], "---"):
		case len(cells) != 4:
			return nil, fmt.Errorf("%s:%d: a key row has 4 cells, this one %d (a | inside a cell?)", path, n, len(cells))
		default:
			name, ok := strings.CutPrefix(cells[0], "`")
			name, ok2 := strings.CutSuffix(name, "`")
			if !ok || !ok2 || name == "" {
				return nil, fmt.Errorf("%s:%d: key cell %q is not `key`", path, n, cells[0])
			}
			keys = append(keys, Key{Name: name, Type: cells[1], Default: cells[2], Line: n})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no key tables found", path)
	}
	return keys, nil
}

// Smallest is the YAML block that the markdown file at path introduces as
// "The smallest accepted file".
func Smallest(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, rest, ok := strings.Cut(string(data), "The smallest accepted file")
	if ok {
		_, rest, ok = strings.Cut(rest, "```yaml\n")
	}
	if ok {
		rest, _, ok = strings.Cut(rest, "```")
	}
	if !ok {
		return nil, fmt.Errorf("%s: no yaml block after \"The smallest accepted file\"", path)
	}
	return []byte(rest), nil
}

// Delete, as Set's value, removes the key.
type Delete struct{}

// Set returns the YAML document src with the value at path (dots and [i],
// e.g. "cameras[0].fps") set, or removed when value is Delete{}. Mappings on
// the way are made when missing.
func Set(src []byte, path string, value any) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc == nil {
		doc = map[string]any{}
	}
	var parent any = doc
	parts := strings.Split(path, ".")
	for i, part := range parts {
		name, idx := part, -1
		if j := strings.IndexByte(part, '['); j >= 0 {
			n, err := strconv.Atoi(strings.TrimSuffix(part[j+1:], "]"))
			if err != nil {
				return nil, fmt.Errorf("bad path %q", path)
			}
			name, idx = part[:j], n
		}
		m, ok := parent.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("path %q: %s is not a mapping", path, strings.Join(parts[:i], "."))
		}
		last := i == len(parts)-1
		if last && idx < 0 {
			if _, ok := value.(Delete); ok {
				delete(m, name)
			} else {
				m[name] = value
			}
			break
		}
		if m[name] == nil {
			m[name] = map[string]any{}
		}
		parent = m[name]
		if idx >= 0 {
			list, ok := parent.([]any)
			if !ok || idx >= len(list) {
				return nil, fmt.Errorf("path %q: no %s[%d]", path, name, idx)
			}
			if last {
				if _, ok := value.(Delete); ok {
					m[name] = slices.Delete(list, idx, idx+1)
				} else {
					list[idx] = value
				}
				break
			}
			parent = list[idx]
		}
	}
	return yaml.Marshal(doc)
}
