// Package modelsig signs ONNX model files and verifies them against trusted
// keys, so that a device loads only the backbones and heads its owner (or
// the device's own training, with a key the owner trusts) released.
//
// Keys and signatures are minisign's (aead.dev/minisign): ed25519, the key
// pair made by `deepfaked release keygen` or by minisign itself (`minisign -G`),
// a key named by its id in hex. The signature travels inside the model
// file, as the last entry of the ONNX model's metadata_props, so a model and
// its signature are one file: an install renames one file into place, and a
// power cut leaves the old signed model or the new one, never a model beside
// another model's signature. What is signed is the file's bytes before that
// entry (protobuf lets a field be appended to an encoded message, and ONNX
// Runtime ignores metadata it does not know). The signature's trusted comment
// names the file's role (backbone or head), so a signed backbone cannot be
// passed off as a head, and the release it belongs to.
package modelsig

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/deepfaked/deepfaked/infer/onnxpb"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

// MetadataKey is the metadata_props key of the signature entry.
const MetadataKey = "deepfaked.signature"

// metadataField is ModelProto.metadata_props' field number (onnx.proto).
const metadataField protowire.Number = 14

// Roles a model file plays; the signature's trusted comment names one.
const (
	Backbone = "backbone"
	Head     = "head"
)

// ErrUnsigned is a model file that carries no signature.
var ErrUnsigned = errors.New("unsigned")

// Keys are the public keys a device trusts (model.trusted_keys). Empty
// trusts every model file, signed or not: signatures are then not checked.
type Keys []minisign.PublicKey

// KeyID is how minisign names a key: its id in upper-case hex, without
// leading zeros, as minisign's .pub files and messages write it.
func KeyID(id uint64) string { return strings.ToUpper(strconv.FormatUint(id, 16)) }

// ParseKeys reads each entry as a minisign public key: the key itself (the
// base64 line that starts "RW") or the path of a minisign .pub file.
func ParseKeys(entries []string) (Keys, error) {
	var keys Keys
	for i, e := range entries {
		k, err := parseKey(strings.TrimSpace(e))
		if err != nil {
			return nil, fmt.Errorf("trusted key %d (%q): %w", i+1, e, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// parseKey reads e as a key's line, else as the path of a .pub file (a
// key's base64 may hold a "/", so the form alone cannot tell them apart).
func parseKey(e string) (minisign.PublicKey, error) {
	var k minisign.PublicKey
	lineErr := k.UnmarshalText([]byte(e))
	if lineErr == nil {
		return k, nil
	}
	if _, err := os.Stat(e); err != nil && strings.HasPrefix(e, "RW") {
		return k, fmt.Errorf("not a minisign public key: %w", lineErr)
	}
	k, err := minisign.PublicKeyFromFile(e)
	if err != nil {
		return k, fmt.Errorf("minisign public key file: %w", err)
	}
	return k, nil
}

// IDs are the keys' ids, for messages.
func (ks Keys) IDs() []string {
	ids := make([]string, len(ks))
	for i, k := range ks {
		ids[i] = KeyID(k.ID())
	}
	return ids
}

// Signer says who signed a model file and what the signature's trusted
// comment says.
type Signer struct {
	KeyID   string // the key's id, upper-case hex
	Role    string // backbone or head
	Release string // the release the signer named; "" if none
	Signed  time.Time
}

// split finds the signature entry at the end of data: it returns the signed
// bytes and the signature's text, or ErrUnsigned.
func split(data []byte) ([]byte, []byte, error) {
	last, off := -1, 0
	for off < len(data) {
		num, typ, n := protowire.ConsumeTag(data[off:])
		if n < 0 {
			return nil, nil, fmt.Errorf("not an ONNX model: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, data[off+n:])
		if m < 0 {
			return nil, nil, fmt.Errorf("not an ONNX model: %w", protowire.ParseError(m))
		}
		last = off
		off += n + m
	}
	if last < 0 {
		return nil, nil, fmt.Errorf("not an ONNX model: empty")
	}
	num, typ, n := protowire.ConsumeTag(data[last:])
	if num != metadataField || typ != protowire.BytesType {
		return nil, nil, ErrUnsigned
	}
	body, _ := protowire.ConsumeBytes(data[last+n:])
	var entry onnxpb.StringStringEntryProto
	if err := proto.Unmarshal(body, &entry); err != nil || entry.GetKey() != MetadataKey {
		return nil, nil, ErrUnsigned
	}
	return data[:last], []byte(entry.GetValue()), nil
}

// comment is the signature's trusted comment: minisign's tab-separated
// key:value pairs.
func comment(role, release string, at time.Time) string {
	c := "timestamp:" + strconv.FormatInt(at.Unix(), 10) + "\trole:" + role
	if release != "" {
		c += "\trelease:" + strings.Map(func(r rune) rune {
			if r < ' ' {
				return ' '
			}
			return r
		}, release)
	}
	return c
}

func parseComment(c string) Signer {
	var s Signer
	for _, kv := range strings.Split(c, "\t") {
		k, v, _ := strings.Cut(kv, ":")
		switch k {
		case "role":
			s.Role = v
		case "release":
			s.Release = v
		case "timestamp":
			if t, err := strconv.ParseInt(v, 10, 64); err == nil {
				s.Signed = time.Unix(t, 0)
			}
		}
	}
	return s
}

// Sign returns model signed with key as a file playing role, for release
// (may be empty). A signature model already carries is replaced. model must
// be an ONNX model.
func Sign(model []byte, key minisign.PrivateKey, role, release string) ([]byte, error) {
	if role != Backbone && role != Head {
		return nil, fmt.Errorf("role %q: want %s or %s", role, Backbone, Head)
	}
	msg, _, err := split(model)
	switch {
	case errors.Is(err, ErrUnsigned):
		msg = model
	case err != nil:
		return nil, err
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(msg, &m); err != nil || m.GetGraph() == nil {
		return nil, fmt.Errorf("not an ONNX model (no graph)")
	}
	r := minisign.NewReader(bytes.NewReader(msg))
	if _, err := io.Copy(io.Discard, r); err != nil { // hashes the message
		return nil, err
	}
	text := r.SignWithComments(key, comment(role, release, time.Now()), "deepfaked "+role+" signed by key "+KeyID(key.ID()))
	entry, err := proto.Marshal(&onnxpb.StringStringEntryProto{Key: proto.String(MetadataKey), Value: proto.String(string(text))})
	if err != nil {
		return nil, err
	}
	out := slices.Clip(msg)
	out = protowire.AppendTag(out, metadataField, protowire.BytesType)
	return protowire.AppendBytes(out, entry), nil
}

// Verify checks that model carries a signature by one of keys over its
// bytes, for a file playing role ("" takes any role).
func Verify(model []byte, keys Keys, role string) (Signer, error) {
	msg, text, err := split(model)
	if err != nil {
		return Signer{}, err
	}
	var sig minisign.Signature
	if err := sig.UnmarshalText(text); err != nil {
		return Signer{}, fmt.Errorf("signature unreadable: %w", err)
	}
	id := KeyID(sig.KeyID)
	i := slices.IndexFunc(keys, func(k minisign.PublicKey) bool { return k.ID() == sig.KeyID })
	if i < 0 {
		return Signer{KeyID: id}, fmt.Errorf("signed by key %s, which is not trusted (trusted: %s)", id, strings.Join(keys.IDs(), ", "))
	}
	r := minisign.NewReader(bytes.NewReader(msg))
	if _, err := io.Copy(io.Discard, r); err != nil {
		return Signer{}, err
	}
	if !r.Verify(keys[i], text) {
		return Signer{KeyID: id}, fmt.Errorf("signature by key %s does not match the file: changed after signing, or damaged", id)
	}
	s := parseComment(sig.TrustedComment)
	s.KeyID = id
	if role != "" && s.Role != role {
		return s, fmt.Errorf("signed by key %s as a %s, used as a %s", id, orNone(s.Role), role)
	}
	return s, nil
}

func orNone(s string) string {
	if s == "" {
		return "file of no role"
	}
	return s
}

// CheckFile verifies the model file at path against keys as a file playing
// role; with no keys it checks nothing. The error names the file.
func CheckFile(path string, keys Keys, role string) (Signer, error) {
	if len(keys) == 0 {
		return Signer{}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Signer{}, err
	}
	return CheckBytes(path, data, keys, role)
}

// CheckBytes is CheckFile for a file already read.
func CheckBytes(path string, data []byte, keys Keys, role string) (Signer, error) {
	if len(keys) == 0 {
		return Signer{}, nil
	}
	s, err := Verify(data, keys, role)
	if errors.Is(err, ErrUnsigned) {
		return s, fmt.Errorf("%s is unsigned, and only models signed by a trusted key (%s) are loaded: %w", path, strings.Join(keys.IDs(), ", "), err)
	}
	if err != nil {
		return s, fmt.Errorf("%s refused: %w", path, err)
	}
	return s, nil
}

// SignFile signs the model file at path in place (atomically: the file is
// the unsigned model or the signed one, whatever happens).
func SignFile(path string, key minisign.PrivateKey, role, release string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	signed, err := Sign(data, key, role, release)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, signed, info.Mode().Perm())
}

// GenerateKey makes a key pair: the public key's file text and the private
// key's, the latter encrypted with password unless it is empty.
func GenerateKey(password string) (pub, priv []byte, err error) {
	pk, sk, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if pub, err = pk.MarshalText(); err != nil { // minisign's .pub file: a comment line, then the key
		return nil, nil, err
	}
	pub = append(pub, '\n')
	if password == "" {
		priv, err = sk.MarshalText()
	} else {
		priv, err = minisign.EncryptKey(password, sk)
	}
	return pub, priv, err
}

// LoadPrivateKey reads a minisign private key; password decrypts an
// encrypted one.
func LoadPrivateKey(path, password string) (minisign.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return minisign.PrivateKey{}, err
	}
	if minisign.IsEncrypted(data) {
		if password == "" {
			return minisign.PrivateKey{}, fmt.Errorf("%s is encrypted: give its password", path)
		}
		k, err := minisign.DecryptKey(password, data)
		if err != nil {
			return k, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	}
	var k minisign.PrivateKey
	if err := k.UnmarshalText(data); err != nil {
		return k, fmt.Errorf("%s: not a minisign private key: %w", filepath.Base(path), err)
	}
	return k, nil
}
