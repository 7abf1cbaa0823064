package usersdb

import "context"

// SetHasher replaces the password hasher of s (tests count its calls).
func SetHasher(s *Store, hash func(ctx context.Context, password string) (string, error)) {
	s.hash = hash
}
