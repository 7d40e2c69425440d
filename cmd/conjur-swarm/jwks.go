package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cyberark/conjur-swarm/internal/identity"
)

// defaultStateDir is where the docs put the host directory of the plugin's
// state mount (state.source).
const defaultStateDir = "/var/lib/conjur-swarm"

func newJWKSCmd() *cobra.Command {
	var (
		stateDir          string
		next, rotate, mrg bool
	)
	cmd := &cobra.Command{
		Use:   "jwks [--state-dir DIR] [--next | --rotate] | jwks --merge FILE...",
		Short: "Print this manager's public signing keys (JWKS), roll them over, or merge several managers' into Conjur's public-keys value",
		Long: `For the per-request identity mode (CONJUR_SWARM_IDENTITY=per-request).

Without --merge, read this manager's signing keys from the host directory of
the plugin's state mount (creating the directory 0700 and the key, as the
plugin does at first start, when there is none yet, so the key can be
published in Conjur before the mode is turned on) and print their public
halves as a JWKS: the key that signs, then the next key when a rollover is
under way. No private key is ever printed.

  --next    make the next key (once; again prints the same), which signs
            nothing yet, and print the JWKS with it. Publish it in Conjur's
            public-keys on every manager's behalf, then --rotate.
  --rotate  make the next key the one that signs (the plugin picks it up at
            its next authentication) and delete the old one.

--merge FILE... combines several managers' JWKS files (and, to add a manager,
the current public-keys value) into the value of Conjur's public-keys
variable: {"type":"jwks","value":{"keys":[...]}}.`,
		Example: `  conjur-swarm jwks > m1.json                  # on each manager
  conjur-swarm jwks --merge m1.json m2.json m3.json > public-keys.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if mrg {
				if next || rotate || cmd.Flags().Changed("state-dir") {
					return errors.New("--merge takes JWKS files only: no --next, --rotate or --state-dir")
				}
				return mergeJWKS(cmd.OutOrStdout(), args)
			}
			if len(args) > 0 {
				return fmt.Errorf("unexpected argument %q: files are for --merge", args[0])
			}
			if next && rotate {
				return errors.New("--next and --rotate are two steps of a rollover: publish the next key in Conjur between them")
			}
			return stateJWKS(cmd.OutOrStdout(), stateDir, next, rotate)
		},
	}
	f := cmd.Flags()
	f.StringVar(&stateDir, "state-dir", defaultStateDir, "host directory of the plugin's state mount (state.source)")
	f.BoolVar(&next, "next", false, "make the next key (published before it signs) and print the JWKS with it")
	f.BoolVar(&rotate, "rotate", false, "make the next key the one that signs")
	f.BoolVar(&mrg, "merge", false, "merge the JWKS files given as arguments into Conjur's public-keys value")
	return cmd
}

// stateJWKS prints the JWKS of the state directory dir, after making the
// next key (next) or rotating to it (rotate).
func stateJWKS(w io.Writer, dir string, next, rotate bool) error {
	keys, err := identity.Open(dir)
	if err != nil {
		return err
	}
	switch {
	case next:
		if _, err := keys.PrepareNext(); err != nil {
			return err
		}
	case rotate:
		if _, err := keys.Rotate(); err != nil {
			return err
		}
	}
	return writeJSON(w, keys.JWKS(), "  ")
}

// mergeJWKS prints the public-keys value of the JWKS files.
func mergeJWKS(w io.Writer, files []string) error {
	inputs := make([]identity.Input, 0, len(files))
	for _, f := range files {
		data, err := readBounded(f)
		if err != nil {
			return err
		}
		inputs = append(inputs, identity.Input{Name: f, Data: data})
	}
	pk, err := identity.Merge(inputs)
	if err != nil {
		return err
	}
	return writeJSON(w, pk, "")
}

// readBounded reads a JWKS file, refusing one too big to be one.
func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read a JWKS file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, identity.MaxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return data, nil
}

func writeJSON(w io.Writer, v any, indent string) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	return enc.Encode(v)
}
