package config

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem in a config. Parse and Load return several joined with
// errors.Join; use errors.As to get at the first.
type Error struct {
	File string // the config file; empty after Parse
	Line int    // 1-based; 0 when the problem has no single line (a missing top-level key)
	Key  string // full key path, e.g. "cameras[0].fps"; empty for the document itself
	Msg  string // the whole message, naming the key
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// problems collects every Error in a config so that they are reported at once.
type problems struct {
	file string
	list []*Error
}

func (p *problems) add(line int, key, msg string) {
	p.list = append(p.list, &Error{File: p.file, Line: line, Key: key, Msg: msg})
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	slices.SortStableFunc(p.list, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	errs := make([]error, len(p.list))
	for i, e := range p.list {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// decoder walks the YAML node tree against the Config struct (by yaml tags) so
// that unknown keys and wrong types are reported with their full path and line.
// Keys absent from the file leave the value decoded over untouched (the default).
type decoder struct {
	problems
	lines map[string]int // key path -> line, for validation messages
}

func valueOf(c *Config) reflect.Value { return reflect.ValueOf(c).Elem() }

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // "key:" with no value keeps the default
	}
	custom := reflect.PointerTo(v.Type()).Implements(unmarshalerType)
	switch {
	case v.Kind() == reflect.Struct && !custom:
		d.mapping(n, v, path)
	case v.Kind() == reflect.Slice && !custom:
		d.sequence(n, v, path)
	default:
		d.leaf(n, v, path)
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.add(n.Line, path, fmt.Sprintf("%sexpected a mapping of keys, got %s", prefix(path), describe(n)))
		return
	}
	names, index := fields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.add(k.Line, path, fmt.Sprintf("%skeys must be plain names, got %s", prefix(path), describe(k)))
			continue
		}
		full := k.Value
		if path != "" {
			full = path + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			d.add(k.Line, full, fmt.Sprintf("duplicate key %q (first at line %d)", full, first))
			continue
		}
		seen[k.Value] = k.Line
		f, ok := index[k.Value]
		if !ok {
			d.add(k.Line, full, fmt.Sprintf("unknown key %q (allowed: %s)", full, strings.Join(names, ", ")))
			continue
		}
		d.lines[full] = k.Line
		d.value(val, v.Field(f), full)
	}
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.add(n.Line, path, fmt.Sprintf("%s: expected a list, got %s", path, describe(n)))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = e.Line
		d.value(e, s.Index(i), p)
	}
	v.Set(s)
}

func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	// Decode into a fresh value so that a failed decode leaves the default.
	p := reflect.New(v.Type())
	err := n.Decode(p.Interface())
	if err == nil && v.Kind() == reflect.Int && n.ShortTag() != "!!int" {
		err = &yaml.TypeError{} // yaml.v3 would silently truncate 1.5 to 1
	}
	if err != nil {
		var te *yaml.TypeError
		msg := err.Error()
		if errors.As(err, &te) {
			msg = fmt.Sprintf("expected %s, got %s", expected(v.Type()), describe(n))
		}
		d.add(n.Line, path, path+": "+msg)
		return
	}
	v.Set(p.Elem())
}

// fields maps a struct's yaml key names to field indexes; names keeps their order.
func fields(t reflect.Type) (names []string, index map[string]int) {
	index = map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		index[name] = i
	}
	return names, index
}

func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}

func expected(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Pointer:
		return expected(t.Elem())
	}
	return t.String()
}
