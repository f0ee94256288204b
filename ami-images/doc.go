// Package amiimages holds the node image: the Asterisk configuration the
// node-agent relies on (asterisk/), and the Go tests that parse it and
// check the facts the agent depends on.
package amiimages
