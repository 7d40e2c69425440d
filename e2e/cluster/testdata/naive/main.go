// Command naive is the naive secret driver of the lab's leader-change
// storm, built only for that comparison and run as a managed plugin: for
// every GetSecret it makes a new conjur-api-go client, authenticates with
// the API key and fetches the one variable the secret's conjur.variable
// label names. No token reuse, no coalescing, no batching: the design of
// most secret-provider plugins, as bench/storm's naive driver.
//
// It prints one JSON line per Get (start, end, secret, task, error; never a
// value) so the lab can count the Gets and their concurrency.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cyberark/conjur-api-go/conjurapi"
	"github.com/cyberark/conjur-api-go/conjurapi/authn"
	"github.com/docker/go-plugins-helpers/secrets"
)

type driver struct {
	cfg   conjurapi.Config
	login authn.LoginPair
	mu    sync.Mutex // one line at a time on stdout
}

type getLine struct {
	Msg    string `json:"msg"`
	Start  string `json:"start"`
	End    string `json:"end"`
	Secret string `json:"secret"`
	Task   string `json:"task"`
	Err    string `json:"err,omitempty"`
}

func (d *driver) Get(req secrets.Request) secrets.Response {
	start := time.Now()
	res := d.fetch(req)
	line, _ := json.Marshal(getLine{Msg: "naive get", Start: start.UTC().Format(time.RFC3339Nano), End: time.Now().UTC().Format(time.RFC3339Nano),
		Secret: req.SecretName, Task: req.TaskID, Err: res.Err})
	d.mu.Lock()
	fmt.Println(string(line))
	d.mu.Unlock()
	return res
}

func (d *driver) fetch(req secrets.Request) secrets.Response {
	id := req.SecretLabels["conjur.variable"]
	if id == "" {
		return secrets.Response{Err: "secret " + req.SecretName + " has no conjur.variable label"}
	}
	c, err := conjurapi.NewClientFromKey(d.cfg, d.login)
	if err != nil {
		return secrets.Response{Err: err.Error()}
	}
	v, err := c.RetrieveSecret(id)
	if err != nil {
		return secrets.Response{Err: err.Error()}
	}
	return secrets.Response{Value: v, DoNotReuse: true}
}

func main() {
	url := flag.String("url", "", "Conjur appliance URL")
	account := flag.String("account", "", "Conjur account")
	login := flag.String("login", "", "Conjur login")
	keyFile := flag.String("key-file", "", "file holding the API key")
	caFile := flag.String("ca-file", "", "Conjur's CA certificate")
	flag.Parse()
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "naive:", err)
		os.Exit(1)
	}
	d := &driver{
		cfg: conjurapi.Config{Account: *account, ApplianceURL: *url, SSLCertPath: *caFile,
			CredentialStorage: conjurapi.CredentialStorageNone, Environment: conjurapi.EnvironmentOSS},
		login: authn.LoginPair{Login: *login, APIKey: strings.TrimSpace(string(key))},
	}
	if err := secrets.NewHandler(d).ServeUnix("naive", 0); err != nil {
		fmt.Fprintln(os.Stderr, "naive:", err)
		os.Exit(1)
	}
}
