package web

import (
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxRel bounds a requested file name: camera/name.jpg is well under it.
const maxRel = 256

// cleanRel checks a file name from a request before it goes near the file
// system: a relative, already clean, slash-separated path of short parts
// made of [A-Za-z0-9_.-] (none starting with a dot: no "..", no hidden
// files), ending in one of exts. It returns the name in the OS's form.
func cleanRel(rel string, exts ...string) (string, bool) {
	if rel == "" || len(rel) > maxRel || path.Clean(rel) != rel || !filepath.IsLocal(rel) {
		return "", false
	}
	for part := range strings.SplitSeq(rel, "/") {
		if part == "" || part[0] == '.' {
			return "", false
		}
		for _, c := range part {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
				return "", false
			}
		}
	}
	for _, e := range exts {
		if strings.HasSuffix(rel, e) && len(rel) > len(e) {
			return filepath.FromSlash(rel), true
		}
	}
	return "", false
}

// serveFile serves dir/rel when rel passes cleanRel. It opens it through
// os.Root, which also refuses a symbolic link leading out of dir, and only
// regular files; anything else is a 404 that says no more.
func serveFile(w http.ResponseWriter, r *http.Request, dir, rel string, exts ...string) {
	name, ok := cleanRel(rel, exts...)
	if !ok || dir == "" {
		http.NotFound(w, r)
		return
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil { // missing, or a link out of dir: the same answer
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "private, max-age=60")
	http.ServeContent(w, r, name, st.ModTime(), f)
}
