package usersdb

// SetHasher replaces the password hasher of s (tests count its calls).
func SetHasher(s *Store, hash func(password string) (string, error)) { s.hash = hash }
