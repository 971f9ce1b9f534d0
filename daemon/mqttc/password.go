package mqttc

import (
	"fmt"
	"os"
	"strings"
)

// ReadPassword returns the broker password from file or from the environment
// variable named env; at most one may be given, and neither means no password.
// The file's trailing newline is dropped. A file other users can read is
// refused, as ssh does with private keys: the password would not be secret.
func ReadPassword(file, env string) (string, error) {
	switch {
	case file != "" && env != "":
		return "", fmt.Errorf("mqtt password: both file %s and environment variable %s given; pick one", file, env)
	case file != "":
		b, err := readSecret(file, "mqtt password file")
		if err != nil {
			return "", err
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("mqtt password file %s is empty", file)
		}
		return pw, nil
	case env != "":
		pw, ok := os.LookupEnv(env)
		if !ok {
			return "", fmt.Errorf("mqtt password: environment variable %s is not set", env)
		}
		if pw == "" {
			return "", fmt.Errorf("mqtt password: environment variable %s is empty", env)
		}
		return pw, nil
	}
	return "", nil
}

// readSecret reads a file that holds secrets. A file other users can read is
// refused, as ssh does with private keys: its secrets would not be secret.
func readSecret(file, what string) ([]byte, error) {
	info, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if info.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("%s %s is readable by all users (mode %04o): chmod o-r it", what, file, info.Mode().Perm())
	}
	if info.Size() > maxSecretFile {
		return nil, fmt.Errorf("%s %s is %d bytes; at most %d", what, file, info.Size(), maxSecretFile)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

const maxSecretFile = 1 << 20

// ReadUsers reads the embedded broker's users file: one "name:password" per
// line, blank lines and lines starting with # ignored. The file must not be
// readable by all users.
func ReadUsers(file string) (map[string]string, error) {
	b, err := readSecret(file, "mqtt users file")
	if err != nil {
		return nil, err
	}
	users := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, pw, ok := strings.Cut(line, ":")
		switch {
		case !ok || name == "" || pw == "":
			return nil, fmt.Errorf("mqtt users file %s line %d: want name:password", file, i+1)
		case users[name] != "":
			return nil, fmt.Errorf("mqtt users file %s line %d: user %q again", file, i+1, name)
		}
		users[name] = pw
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("mqtt users file %s names no user", file)
	}
	return users, nil
}
