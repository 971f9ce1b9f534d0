package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// IDLength is how many hex digits of a model file's sha256 name it in logs
// and verdicts: short enough to read, long enough to tell exports apart.
const IDLength = 12

// FileSHA256 is the hex sha256 of the file at path: a model file's identity,
// for verdicts, caches (TensorRT engines) and quantisation metadata.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CheckPin refuses path unless its sha256 is want; an empty want pins
// nothing (model.backbone_sha256, model.head_sha256).
func CheckPin(path, want string) error {
	if want == "" {
		return nil
	}
	got, err := FileSHA256(path)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s has sha256 %s, but the config pins %s: refused", path, got, want)
	}
	return nil
}
