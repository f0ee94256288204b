// Package repocheck holds tests of the repository itself: what may be
// committed. It has no code.
package repocheck
