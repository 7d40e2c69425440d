package driver

import (
	"fmt"
	"strings"
	"testing"

	"github.com/docker/docker/pkg/plugins"
	"github.com/docker/go-connections/tlsconfig"
	"github.com/moby/swarmkit/v2/api"
	"github.com/moby/swarmkit/v2/manager/drivers"
	"github.com/moby/swarmkit/v2/node/plugin"
)

// socketPlugin is what Docker's plugin store hands swarmkit: a named plugin
// whose Client is moby's own plugins.Client, dialling our unix socket.
type socketPlugin struct {
	name   string
	client *plugins.Client
}

func (p socketPlugin) Name() string               { return p.name }
func (p socketPlugin) ScopedPath(s string) string { return s }
func (p socketPlugin) Client() plugin.Client      { return p.client }

// socketGetter is a plugin.Getter holding one plugin, checking the
// capability the way Docker's store does.
type socketGetter struct{ p socketPlugin }

func (g socketGetter) Get(name, capability string) (plugin.Plugin, error) {
	if name != g.p.name || capability != drivers.SecretsProviderCapability {
		return nil, fmt.Errorf("plugin %q with capability %q not found", name, capability)
	}
	return g.p, nil
}

func (g socketGetter) GetAllManagedPluginsByCap(string) []plugin.Plugin {
	return []plugin.Plugin{g.p}
}

// TestSwarmkitCaller drives the plugin with the code the Swarm leader runs:
// swarmkit's manager/drivers building the request from a SecretSpec and a
// Task, over moby's plugins.Client on the unix socket.
func TestSwarmkitCaller(t *testing.T) {
	d, logs := newTestDriver(t, demoFetcher(), &fakeResolver{})
	_, sock := servePlugin(t, d)
	pc, err := plugins.NewClient("unix://"+sock, &tlsconfig.Options{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	provider := drivers.New(socketGetter{socketPlugin{name: "cyberark/conjur:latest", client: pc}})
	sd, err := provider.NewSecretDriver(&api.Driver{Name: "cyberark/conjur:latest"})
	if err != nil {
		t.Fatal(err)
	}

	task := &api.Task{
		ID:        "task-1",
		ServiceID: "service-1",
		NodeID:    "node-1",
		Slot:      1,
		ServiceAnnotations: api.Annotations{
			Name:   "web",
			Labels: map[string]string{"com.docker.stack.namespace": "demo"},
		},
		Spec: api.TaskSpec{Runtime: &api.TaskSpec_Container{Container: &api.ContainerSpec{
			Image: "nginx:1.27", Hostname: "{{.Service.Name}}",
		}}},
		Endpoint: &api.Endpoint{Spec: &api.EndpointSpec{Mode: api.ResolutionModeVirtualIP,
			Ports: []*api.PortConfig{{Name: "http", TargetPort: 80, PublishedPort: 8080}}}},
	}
	spec := &api.SecretSpec{
		Annotations: api.Annotations{Name: "db_password", Labels: map[string]string{"conjur.variable": "apps/demo/db-password"}},
		Driver:      &api.Driver{Name: "cyberark/conjur:latest"},
	}

	value, doNotReuse, err := sd.Get(spec, task)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if string(value) != demoValue || !doNotReuse {
		t.Errorf("Get = %d bytes, doNotReuse %t; want the demo value and true", len(value), doNotReuse)
	}
	line := logs.All()[0].ContextMap()
	for k, want := range map[string]string{"secret": "db_password", "service": "web", "service_id": "service-1",
		"task": "task-1", "node": "node-1", "image": "nginx:1.27", "variable": "apps/demo/db-password"} {
		if line[k] != want {
			t.Errorf("audit %s = %v, want %q (as swarmkit sent it)", k, line[k], want)
		}
	}

	spec.Annotations.Labels = map[string]string{"conjur.variable": "apps/demo/missing"}
	_, _, err = sd.Get(spec, task)
	if err == nil || !strings.Contains(err.Error(), `conjur-swarm [NOT_FOUND] secret "db_password" (variable "apps/demo/missing"`) {
		t.Errorf("Get of a missing variable: %v", err)
	}

	spec.Annotations.Labels = nil
	_, _, err = sd.Get(spec, task)
	if err == nil || !strings.Contains(err.Error(), "conjur-swarm [DENIED]") {
		t.Errorf("Get without a mapping: %v", err)
	}
}
