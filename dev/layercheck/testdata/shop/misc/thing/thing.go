// Package thing is in a folder the rules do not know. VIOLATION areas.
package thing
