package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cyberark/conjur-swarm/internal/pluginapi"
)

// defaultSocket is serve's default socket (a legacy plugin's). A managed
// plugin's socket is /run/docker/plugins/<plugin id>/conjur.sock.
const defaultSocket = "/run/docker/plugins/conjur.sock"

// pluginSocket picks the socket for get and status: the flag when given;
// otherwise the default socket if it exists, else the only managed plugin
// socket under /run/docker/plugins.
func pluginSocket(cmd *cobra.Command, flag string) (string, error) {
	if cmd.Flags().Changed("socket") {
		return flag, nil
	}
	if _, err := os.Stat(defaultSocket); err == nil {
		return defaultSocket, nil
	}
	found, _ := pluginapi.FindSockets(filepath.Dir(defaultSocket))
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("no plugin socket found under %s: %s; or give --socket (a managed plugin's is /run/docker/plugins/<plugin id>/conjur.sock)", filepath.Dir(defaultSocket), pluginNotRunning)
	default:
		return "", fmt.Errorf("several plugin sockets found, give one with --socket: %s", strings.Join(found, ", "))
	}
}

// pluginNotRunning is what to check when no plugin answers on a socket.
const pluginNotRunning = "the plugin is not running or disabled: docker plugin ls"

// unreachable adds what to check to an error calling the plugin when
// nothing listens on its socket (the file is missing, or nobody accepts).
func unreachable(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
		return fmt.Errorf("%s: %w", pluginNotRunning, err)
	}
	return err
}

type getFlags struct {
	socket        string
	timeout       time.Duration
	secret        string
	secretLabels  []string
	service       string
	serviceID     string
	serviceLabels []string
	taskID        string
	image         string
	node          string
}

func newGetCmd() *cobra.Command {
	var f getFlags
	cmd := &cobra.Command{
		Use:   "get --socket PATH --secret NAME [--secret-label k=v]... [--service NAME] ...",
		Short: "Send a GetSecret to a running plugin exactly as Swarm does; print the value",
		Long: `Send POST /SecretProvider.GetSecret to the plugin socket the way the Swarm
leader does and print the value to stdout: the exact bytes when stdout is a
file or a pipe, followed by a newline when stdout is a terminal (unless the
value ends with one). On a refusal the plugin's error goes to stderr and the
exit status is 1.

A managed plugin's socket is /run/docker/plugins/<plugin id>/conjur.sock
(docker plugin inspect -f '{{.Id}}' cyberark/conjur).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := f.request()
			if err != nil {
				return err
			}
			sock, err := pluginSocket(cmd, f.socket)
			if err != nil {
				return err
			}
			res, err := pluginapi.NewClient(sock, f.timeout).GetSecret(cmd.Context(), req)
			if err != nil {
				return unreachable(err)
			}
			if res.Err != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), res.Err)
				return exitError{code: 1}
			}
			return writeValue(cmd.OutOrStdout(), res.Value)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.socket, "socket", defaultSocket, "the plugin's unix socket (default: this one if it exists, else the only one under /run/docker/plugins/*/)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long (Swarm waits 30s)")
	fl.StringVar(&f.secret, "secret", "", "secret name (SecretName)")
	fl.StringArrayVar(&f.secretLabels, "secret-label", nil, "secret label k=v (repeatable)")
	fl.StringVar(&f.service, "service", "", "service name (ServiceName)")
	fl.StringVar(&f.serviceID, "service-id", "", "service id (ServiceID)")
	fl.StringArrayVar(&f.serviceLabels, "service-label", nil, "service label k=v (repeatable)")
	fl.StringVar(&f.taskID, "task-id", "", "task id (TaskID)")
	fl.StringVar(&f.image, "image", "", "task image (TaskImage)")
	fl.StringVar(&f.node, "node", "", "node id (NodeID)")
	return cmd
}

// writeValue writes a fetched value: its exact bytes, and a newline after
// them when w is a terminal so that the shell's prompt does not run on from
// the value.
func writeValue(w io.Writer, value []byte) error {
	if _, err := w.Write(value); err != nil {
		return err
	}
	if isTerminal(w) && !bytes.HasSuffix(value, []byte("\n")) {
		_, err := io.WriteString(w, "\n")
		return err
	}
	return nil
}

// isTerminal reports whether w is a terminal (a file whose terminal
// attributes can be read; /dev/null, pipes and files have none).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (f getFlags) request() (pluginapi.Request, error) {
	var errs []error
	if f.secret == "" {
		errs = append(errs, errors.New("--secret is required: give the secret's name"))
	}
	sl, err := labelFlags("--secret-label", f.secretLabels)
	errs = append(errs, err)
	vl, err := labelFlags("--service-label", f.serviceLabels)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return pluginapi.Request{}, err
	}
	return pluginapi.Request{
		SecretName:    f.secret,
		SecretLabels:  sl,
		ServiceID:     f.serviceID,
		ServiceName:   f.service,
		ServiceLabels: vl,
		TaskID:        f.taskID,
		TaskImage:     f.image,
		NodeID:        f.node,
	}, nil
}

// labelFlags reads repeated k=v flags.
func labelFlags(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	var errs []error
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			errs = append(errs, fmt.Errorf("%s %q: want KEY=VALUE", flag, kv))
			continue
		}
		out[k] = v
	}
	return out, errors.Join(errs...)
}
