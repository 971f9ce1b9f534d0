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
		info, err := os.Stat(file)
		if err != nil {
			return "", fmt.Errorf("mqtt password file: %w", err)
		}
		if info.Mode().Perm()&0o004 != 0 {
			return "", fmt.Errorf("mqtt password file %s is readable by all users (mode %04o): chmod o-r it", file, info.Mode().Perm())
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("mqtt password file: %w", err)
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
