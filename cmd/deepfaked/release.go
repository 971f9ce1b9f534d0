package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/infer/modelsig"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

func newReleaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Sign model files, and verify them, for devices that trust only signed models",
		Long: `A device with model.trusted_keys loads only backbones and heads signed by
one of those keys. Keys and signatures are minisign's: a key pair from
'release keygen' or 'minisign -G', the signature inside the model file.`,
	}
	cmd.AddCommand(newReleaseKeygenCmd(), newReleaseSignCmd(), newReleaseVerifyCmd())
	return cmd
}

// readPassword is the first line of file; "" when file is "".
func readPassword(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	if pw == "" {
		return "", fmt.Errorf("--password-file %s is empty", file)
	}
	return pw, nil
}

func newReleaseKeygenCmd() *cobra.Command {
	var out, passwordFile string
	cmd := &cobra.Command{
		Use:   "keygen --out PREFIX [--password-file F]",
		Short: "Make a signing key pair: PREFIX.key (secret) and PREFIX.pub",
		Long: `Writes PREFIX.pub, the public key to list in model.trusted_keys, and
PREFIX.key, the secret key (mode 0600), encrypted with the password in
--password-file (a release key, kept off the devices) or not (a device's
own key for train.signing_key, read unattended). Existing files are not
overwritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(passwordFile)
			if err != nil {
				return err
			}
			pub, priv, err := modelsig.GenerateKey(pw)
			if err != nil {
				return err
			}
			for _, p := range []string{out + ".pub", out + ".key"} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("%s exists (or cannot be checked: %v): not overwritten", p, err)
				}
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
				return err
			}
			if err := atomicfile.Write(out+".key", priv, 0o600); err != nil {
				return err
			}
			if err := atomicfile.Write(out+".pub", pub, 0o644); err != nil {
				return err
			}
			enc := "not encrypted"
			if pw != "" {
				enc = "encrypted"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret key %s.key (%s), public key %s.pub:\n%s", out, enc, out, pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "path prefix of the two files (required)")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "encrypt the secret key with the password on this file's first line")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// roleOf is the role a model file plays by its name: backbone*.onnx or head*.onnx.
func roleOf(path string) (string, error) {
	base := filepath.Base(path)
	for _, r := range []string{modelsig.Backbone, modelsig.Head} {
		if strings.HasPrefix(base, r) {
			return r, nil
		}
	}
	return "", fmt.Errorf("%s: cannot tell its role from its name: give --role %s or %s", path, modelsig.Backbone, modelsig.Head)
}

func newReleaseSignCmd() *cobra.Command {
	var key, passwordFile, release, role string
	cmd := &cobra.Command{
		Use:   "sign --key F [--password-file F] [--release NAME] [--role backbone|head] MODEL.onnx...",
		Short: "Sign model files in place",
		Long: `Signs each ONNX file in place (atomically), replacing a signature it
carries. The signature names the file's role, from --role or from its name
(backbone*.onnx, head*.onnx), and --release. The files' sha256 change:
write a release's SHA256SUMS after signing.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			pw, err := readPassword(passwordFile)
			if err != nil {
				return err
			}
			k, err := modelsig.LoadPrivateKey(key, pw)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			for _, f := range files {
				r := role
				if r == "" {
					if r, err = roleOf(f); err != nil {
						return err
					}
				}
				if err := modelsig.SignFile(f, k, r, release); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: signed as a %s by key %s\n", f, r, modelsig.KeyID(k.ID()))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the minisign secret key (required)")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "the key's password, on this file's first line")
	cmd.Flags().StringVar(&release, "release", "", "the release's name, in each signature")
	cmd.Flags().StringVar(&role, "role", "", "backbone or head, for every file (default: from each file's name)")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

func newReleaseVerifyCmd() *cobra.Command {
	var trusted []string
	cmd := &cobra.Command{
		Use:   "verify --trusted KEY [--trusted KEY]... MODEL.onnx...",
		Short: "Check that model files are signed by a trusted key",
		Long: `Prints who signed each file, as what and for which release; exits 1 if
any file is unsigned, signed by a key not given, or changed since signing.
KEY is a public key's line (RW...) or its .pub file, as in model.trusted_keys.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			keys, err := modelsig.ParseKeys(trusted)
			if err != nil {
				return fmt.Errorf("--trusted: %w", err)
			}
			if len(keys) == 0 {
				return errors.New("--trusted: give at least one key")
			}
			var errs []error
			for _, f := range files {
				s, err := modelsig.CheckFile(f, keys, "")
				if err != nil {
					errs = append(errs, err)
					continue
				}
				line := fmt.Sprintf("%s: %s signed by key %s on %s", f, s.Role, s.KeyID, s.Signed.UTC().Format("2006-01-02 15:04:05 UTC"))
				if s.Release != "" {
					line += ", for " + s.Release
				}
				fmt.Fprintln(cmd.OutOrStdout(), line)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringArrayVar(&trusted, "trusted", nil, "a trusted public key (repeat for several)")
	return cmd
}
