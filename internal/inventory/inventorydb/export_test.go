package inventorydb

import "io/fs"

// ReadInitMigration exposes the first migration's text to the tests.
func ReadInitMigration() (string, error) {
	b, err := fs.ReadFile(Migrations(), "0001_init.sql")
	return string(b), err
}
