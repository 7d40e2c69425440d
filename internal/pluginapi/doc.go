// Package pluginapi is the plugin socket's protocol: the GetSecret request
// and answer exactly as swarmkit sends and reads them, the bodies of the
// private endpoints (/ConjurSwarm.Status, /ConjurSwarm.Bootstrap), and a
// Client that calls a running plugin the way Docker does. The driver serves
// it; the get and status commands and the agents call it.
//
// A Response holds the value in a redact.Bytes, so it prints and logs
// without it; Response.Wire is the form that goes on the socket.
package pluginapi
