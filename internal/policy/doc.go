// Package policy parses, validates and evaluates the mapping policy: which
// Conjur variable a swarm secret request stands for and whether the
// requesting task may have it. It is pure apart from loading the file.
//
// Parse reads a version 1 mapping file and reports every problem at once with
// its position. Policy.Resolve turns a Request into a Decision: the first
// rule whose match holds decides; a matching rule whose allow fails denies;
// no match denies. Every resolved variable id is checked against the safety
// rules (one path segment per service-side value, a conservative character
// set, no empty, "." or ".." segments, a bounded length, and the file's
// within branches) after expansion, so no label, service name or image can
// steer a request outside what the file intends.
//
// Store holds the policy in force and reloads the file when it changes,
// keeping the last good policy when a new one is broken.
package policy
