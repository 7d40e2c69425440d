package pluginapi

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// SocketName is the plugin's socket file name (config.json interface.socket).
const SocketName = "conjur.sock"

// FindSockets returns the plugin sockets under dir: dir/conjur.sock (a
// legacy plugin) and dir/<pluginID>/conjur.sock (managed plugins), sorted.
func FindSockets(dir string) ([]string, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	candidates := []string{filepath.Join(dir, SocketName)}
	more, err := filepath.Glob(filepath.Join(dir, "*", SocketName))
	if err != nil {
		return nil, err
	}
	candidates = append(candidates, more...)
	var out []string
	for _, p := range candidates {
		fi, err := os.Stat(p)
		if err == nil && fi.Mode().Type() == fs.ModeSocket {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}
