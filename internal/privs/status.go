package privs

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Status is what /proc/PID/status says about a process's privileges.
type Status struct {
	CapInh, CapPrm, CapEff, CapBnd, CapAmb uint64
	NoNewPrivs                             bool
}

// ParseStatus reads the capability sets and NoNewPrivs of a
// /proc/PID/status file; a field it lacks is an error.
func ParseStatus(data []byte) (Status, error) {
	var st Status
	hex := map[string]*uint64{"CapInh": &st.CapInh, "CapPrm": &st.CapPrm, "CapEff": &st.CapEff, "CapBnd": &st.CapBnd, "CapAmb": &st.CapAmb}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch {
		case hex[key] != nil:
			n, err := strconv.ParseUint(val, 16, 64)
			if err != nil {
				return Status{}, fmt.Errorf("%s is %q, not hexadecimal", key, val)
			}
			*hex[key], seen[key] = n, true
		case key == "NoNewPrivs":
			st.NoNewPrivs, seen[key] = val == "1", true
		}
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"} {
		if !seen[k] {
			return Status{}, fmt.Errorf("the status has no %s line", k)
		}
	}
	return st, nil
}

// Dropped reports whether every capability set is empty and no_new_privs
// is set.
func (s Status) Dropped() bool {
	return s.CapInh == 0 && s.CapPrm == 0 && s.CapEff == 0 && s.CapBnd == 0 && s.CapAmb == 0 && s.NoNewPrivs
}
