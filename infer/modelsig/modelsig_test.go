package modelsig

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

type pair struct {
	pub  minisign.PublicKey
	priv minisign.PrivateKey
}

func newPair(t testing.TB) pair {
	t.Helper()
	pubText, privText, err := GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pubPath, privPath := filepath.Join(dir, "k.pub"), filepath.Join(dir, "k.key")
	if err := os.WriteFile(pubPath, pubText, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(privPath, privText, 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := ParseKeys([]string{pubPath})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := LoadPrivateKey(privPath, "")
	if err != nil {
		t.Fatal(err)
	}
	return pair{keys[0], priv}
}

func head(t testing.TB) []byte {
	t.Helper()
	_, h := testenv.Models(t)
	data, err := os.ReadFile(h)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestVerify: a model signed by a trusted key passes as the role it was
// signed for; every change to the signed bytes, the signature or its trusted
// comment, a key not trusted, a role not signed for, and a file with no
// signature (or something appended after it) are refused, each with its reason.
func TestVerify(t *testing.T) {
	a, b := newPair(t), newPair(t)
	model := head(t)
	signed, err := Sign(model, a.priv, Head, "deepfaked-dfdc v2")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(signed, model) {
		t.Fatal("signing changed the model's own bytes")
	}
	flip := func(data []byte, at int) []byte {
		out := bytes.Clone(data)
		out[at] ^= 0x01
		return out
	}
	sigAt := len(model) // the signature entry starts here
	roleAt := bytes.LastIndex(signed, []byte("role:head"))
	appended := protowire.AppendBytes(protowire.AppendTag(bytes.Clone(signed), 2, protowire.BytesType), []byte("extra"))
	resigned, err := Sign(signed, b.priv, Head, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		data  []byte
		keys  Keys
		role  string
		want  string // "" passes
		unsig bool
	}{
		{name: "trusted", data: signed, keys: Keys{a.pub}, role: Head},
		{name: "one of several trusted", data: signed, keys: Keys{b.pub, a.pub}, role: Head},
		{name: "any role", data: signed, keys: Keys{a.pub}},
		{name: "key not trusted", data: signed, keys: Keys{b.pub}, role: Head, want: "signed by key " + KeyID(a.pub.ID()) + ", which is not trusted (trusted: " + KeyID(b.pub.ID()) + ")"},
		{name: "other role", data: signed, keys: Keys{a.pub}, role: Backbone, want: "as a head, used as a backbone"},
		{name: "model byte changed", data: flip(signed, 100), keys: Keys{a.pub}, role: Head, want: "does not match the file"},
		{name: "last model byte changed", data: flip(signed, sigAt-1), keys: Keys{a.pub}, role: Head, want: "does not match the file"},
		{name: "trusted comment changed", data: append(append(bytes.Clone(signed[:roleAt]), "role:heae"...), signed[roleAt+9:]...), keys: Keys{a.pub}, role: Head, want: "does not match the file"},
		{name: "unsigned", data: model, keys: Keys{a.pub}, role: Head, unsig: true},
		{name: "field after the signature", data: appended, keys: Keys{a.pub}, role: Head, unsig: true},
		{name: "re-signed by another key", data: resigned, keys: Keys{b.pub}, role: Head},
		{name: "re-signed: the first key no longer signs it", data: resigned, keys: Keys{a.pub}, role: Head, want: "which is not trusted"},
		{name: "truncated", data: signed[:len(signed)-7], keys: Keys{a.pub}, role: Head, want: "not an ONNX model"},
		{name: "not a model", data: []byte("hello, world"), keys: Keys{a.pub}, role: Head, want: "not an ONNX model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Verify(tc.data, tc.keys, tc.role)
			switch {
			case tc.unsig:
				if !errors.Is(err, ErrUnsigned) {
					t.Fatalf("err %v, want ErrUnsigned", err)
				}
			case tc.want == "":
				if err != nil {
					t.Fatal(err)
				}
				if s.Role != Head || s.Signed.IsZero() {
					t.Fatalf("signer %+v", s)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
	s, err := Verify(signed, Keys{a.pub}, Head)
	if err != nil || s.Release != "deepfaked-dfdc v2" || s.KeyID != KeyID(a.pub.ID()) {
		t.Fatalf("signer %+v, %v", s, err)
	}
	if bytes.Count(resigned, []byte(MetadataKey)) != 1 {
		t.Fatal("re-signing kept the old signature")
	}
	if _, err := Sign([]byte("not a model"), a.priv, Head, ""); err == nil {
		t.Fatal("signed something that is not a model")
	}
	if _, err := Sign(model, a.priv, "weights", ""); err == nil {
		t.Fatal("signed for an unknown role")
	}
}

// TestCheckFile: with no trusted keys nothing is checked; with keys the
// error names the file and the keys; SignFile signs in place.
func TestCheckFile(t *testing.T) {
	a := newPair(t)
	path := filepath.Join(t.TempDir(), "head.onnx")
	if err := os.WriteFile(path, head(t), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckFile(path, nil, Head); err != nil {
		t.Fatalf("no keys: %v", err)
	}
	_, err := CheckFile(path, Keys{a.pub}, Head)
	if !errors.Is(err, ErrUnsigned) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), KeyID(a.pub.ID())) {
		t.Fatalf("unsigned: %v", err)
	}
	if err := SignFile(path, a.priv, Head, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckFile(path, Keys{a.pub}, Head); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o640 {
		t.Fatalf("mode after signing: %v %v", info.Mode(), err)
	}
}

// TestMinisignTool: the format is minisign's. Debian's minisign verifies a
// signature made here over the signed bytes, and a key pair minisign made
// signs here and verifies as trusted.
func TestMinisignTool(t *testing.T) {
	bin, err := exec.LookPath("minisign")
	if err != nil {
		t.Fatal("minisign not installed (Debian's minisign; `make deps` installs it)")
	}
	dir := t.TempDir()
	a := newPair(t)
	signed, err := Sign(head(t), a.priv, Head, "")
	if err != nil {
		t.Fatal(err)
	}
	msg, sig, err := split(signed)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "head"), msg, 0o644))
	must(os.WriteFile(filepath.Join(dir, "head.minisig"), sig, 0o644))
	pub, err := a.pub.MarshalText()
	must(err)
	must(os.WriteFile(filepath.Join(dir, "a.pub"), pub, 0o644))
	if out, err := exec.Command(bin, "-V", "-m", filepath.Join(dir, "head"), "-p", filepath.Join(dir, "a.pub")).CombinedOutput(); err != nil || !strings.Contains(string(out), "role:head") {
		t.Fatalf("minisign -V: %v\n%s", err, out)
	}

	pubPath, keyPath := filepath.Join(dir, "tool.pub"), filepath.Join(dir, "tool.key")
	if out, err := exec.Command(bin, "-G", "-W", "-p", pubPath, "-s", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("minisign -G: %v\n%s", err, out)
	}
	key, err := LoadPrivateKey(keyPath, "")
	must(err)
	keys, err := ParseKeys([]string{pubPath})
	must(err)
	signed, err = Sign(head(t), key, Head, "")
	must(err)
	if _, err := Verify(signed, keys, Head); err != nil {
		t.Fatal(err)
	}
}

// TestKeys: a key is given as its base64 line or a .pub file; anything else
// is refused naming the entry; an encrypted private key needs its password.
func TestKeys(t *testing.T) {
	pubText, _, err := GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	comment, line, _ := strings.Cut(strings.TrimSpace(string(pubText)), "\n")
	keys, err := ParseKeys([]string{line})
	if err != nil || len(keys) != 1 {
		t.Fatalf("key line: %v", err)
	}
	// Ids are written as minisign writes them, leading zeros left out.
	if id := KeyID(keys[0].ID()); !strings.HasSuffix(comment, " "+id) {
		t.Errorf("KeyID %s, the .pub file says %q", id, comment)
	}
	if id := KeyID(0x0DBBF579F3E69EA3); id != "DBBF579F3E69EA3" {
		t.Errorf("KeyID with a leading zero: %s", id)
	}
	for _, bad := range []string{"RWnot-a-key", "/nonexistent/key.pub", ""} {
		if _, err := ParseKeys([]string{line, bad}); err == nil || !strings.Contains(err.Error(), "trusted key 2") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestEncryptedKey: minisign's key encryption (scrypt with its memory-hard
// parameters: seconds and 1 GiB each time), as a release key on a workstation.
func TestEncryptedKey(t *testing.T) {
	testenv.Long(t)
	_, priv, err := GenerateKey("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "release.key")
	if err := os.WriteFile(path, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(path, ""); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("no password: %v", err)
	}
	if _, err := LoadPrivateKey(path, "correct horse"); err != nil {
		t.Fatal(err)
	}
}

// FuzzVerify: any bytes give a signer or an error, never a panic.
func FuzzVerify(f *testing.F) {
	a := newPair(f)
	signed, err := Sign(head(f), a.priv, Head, "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add([]byte{})
	f.Add([]byte{0x72, 0x03, 0x0a, 0x01, 0x78})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Verify(data, Keys{a.pub}, Head)
	})
}
