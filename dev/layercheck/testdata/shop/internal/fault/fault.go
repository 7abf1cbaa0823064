// Package fault is a kernel package: domain packages may import it.
package fault

// Kind is an error kind.
type Kind int
