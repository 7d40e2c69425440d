// Package policy parses, validates and evaluates the mapping policy: which
// Conjur variable a swarm secret request stands for and whether the
// requesting task may have it. It is pure apart from loading the file.
package policy
