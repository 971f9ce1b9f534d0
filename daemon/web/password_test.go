package web

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("hunter2"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		want    string // "" accepted, and "hunter2" logs in
	}{
		{"plain", "hunter2\n", 0o600, ""},
		{"plain crlf", "hunter2\r\n", 0o640, ""},
		{"bcrypt hash", string(hash) + "\n", 0o600, ""},
		{"readable by all", "hunter2\n", 0o644, "readable by all users"},
		{"empty", "\n", 0o600, "is empty"},
		{"too long for bcrypt", strings.Repeat("x", 100), 0o600, "password length exceeds 72 bytes"},
		{"too big", strings.Repeat("x", maxPasswordFile+1), 0o600, "bytes; at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			h, err := ReadPasswordFile(p)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "web.password_file") {
					t.Fatalf("got %v, want an error naming web.password_file containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if bcrypt.CompareHashAndPassword(h, []byte("hunter2")) != nil {
				t.Fatalf("hash %s does not take the password", h)
			}
			if strings.Contains(string(h), "hunter2") {
				t.Fatal("the password is kept in clear")
			}
		})
	}
	if _, err := ReadPasswordFile(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "web.password_file") {
		t.Fatalf("missing file: %v", err)
	}
}
