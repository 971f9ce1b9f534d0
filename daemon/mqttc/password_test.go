package mqttc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask must not decide the test
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "s3cret\n", 0o600)
	crlf := write("crlf", "pa ss\r\n", 0o640)
	inner := write("inner", "two\nlines\n", 0o400)
	empty := write("empty", "\n", 0o600)
	public := write("public", "s3cret\n", 0o644)
	t.Setenv("DF_TEST_PW", "fromenv")
	t.Setenv("DF_TEST_EMPTY", "")

	for _, tc := range []struct {
		name, file, env string
		want, err       string
	}{
		{"file", good, "", "s3cret", ""},
		{"file crlf", crlf, "", "pa ss", ""},
		{"only trailing newlines trimmed", inner, "", "two\nlines", ""},
		{"env", "", "DF_TEST_PW", "fromenv", ""},
		{"neither", "", "", "", ""},
		{"both", good, "DF_TEST_PW", "", "both"},
		{"missing file", filepath.Join(dir, "nope"), "", "", filepath.Join(dir, "nope")},
		{"empty file", empty, "", "", empty + " is empty"},
		{"world-readable", public, "", "", public + " is readable by all"},
		{"unset env", "", "DF_TEST_UNSET_VAR", "", "DF_TEST_UNSET_VAR is not set"},
		{"empty env", "", "DF_TEST_EMPTY", "", "DF_TEST_EMPTY is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadPassword(tc.file, tc.env)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got (%q, %v), want error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got (%q, %v), want %q", got, err, tc.want)
			}
		})
	}
}
