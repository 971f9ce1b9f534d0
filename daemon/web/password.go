package web

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/crypto/bcrypt"
)

// maxPasswordFile bounds the password file: a password or a bcrypt hash is
// a line, and a wrong path (a disk image) must not be read into memory.
const maxPasswordFile = 4 << 10

// ReadPasswordFile reads web.password_file: a bcrypt hash, kept as it is, or
// a password, hashed here so that only the hash stays in memory. A trailing
// newline is dropped. A file other users can read is refused, as
// mqtt.embedded.users_file is: its secret would not be secret.
func ReadPasswordFile(file string) ([]byte, error) {
	info, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("web.password_file: %w", err)
	}
	switch {
	case info.IsDir():
		return nil, fmt.Errorf("web.password_file %s is a directory", file)
	case info.Mode().Perm()&0o004 != 0:
		return nil, fmt.Errorf("web.password_file %s is readable by all users (mode %04o): chmod o-r it", file, info.Mode().Perm())
	case info.Size() > maxPasswordFile:
		return nil, fmt.Errorf("web.password_file %s is %d bytes; at most %d", file, info.Size(), maxPasswordFile)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("web.password_file: %w", err)
	}
	pw := bytes.TrimRight(b, "\r\n")
	if len(pw) == 0 {
		return nil, fmt.Errorf("web.password_file %s is empty", file)
	}
	if _, err := bcrypt.Cost(pw); err == nil {
		return pw, nil // already a bcrypt hash
	}
	hash, err := bcrypt.GenerateFromPassword(pw, bcrypt.DefaultCost)
	if err != nil { // a password over bcrypt's 72 bytes
		return nil, fmt.Errorf("web.password_file %s: %w", file, err)
	}
	return hash, nil
}
