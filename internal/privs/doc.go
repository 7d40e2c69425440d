// Package privs drops the process's privileges once the plugin has bound
// its sockets: every Linux capability, from every set and every thread, and
// no_new_privs. The plugin runs as uid 0 and needs no capability afterwards:
// it reads root-owned files it owns and talks over sockets it already holds.
package privs
