package provider

import (
	"log/slog"
	"net/http"

	"github.com/openfaas/faas-provider/types"
)

// Secrets is the secret store (secrets.Store). Errors are classified with
// internal/fault: Invalid for a bad name, Conflict for a secret that
// exists, NotFound for one that does not.
type Secrets interface {
	Names() ([]string, error)
	Create(name string, value []byte) error
	Update(name string, value []byte) error
	Delete(name string) error
}

// secretsHandler is /system/secrets: GET lists the names (never values),
// POST creates (201, 409 when it exists), PUT updates (200, 404 when
// missing), DELETE removes (200, 404 when missing).
func secretsHandler(store Secrets, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkNamespace(r); err != nil {
			fail(w, log, err)
			return
		}
		if r.Method == http.MethodGet {
			listSecrets(w, store, log)
			return
		}
		var s types.Secret
		if err := decode(r, &s); err != nil {
			fail(w, log, err)
			return
		}
		if err := checkSpecNamespace(s.Namespace); err != nil {
			fail(w, log, err)
			return
		}
		value := s.RawValue
		if len(value) == 0 {
			value = []byte(s.Value)
		}
		var err error
		status := http.StatusOK
		switch r.Method {
		case http.MethodPost:
			err, status = store.Create(s.Name, value), http.StatusCreated
		case http.MethodPut:
			err = store.Update(s.Name, value)
		case http.MethodDelete:
			err = store.Delete(s.Name)
		}
		if err != nil {
			fail(w, log, err)
			return
		}
		w.WriteHeader(status)
	}
}

func listSecrets(w http.ResponseWriter, store Secrets, log *slog.Logger) {
	names, err := store.Names()
	if err != nil {
		fail(w, log, err)
		return
	}
	out := make([]types.Secret, 0, len(names))
	for _, n := range names {
		out = append(out, types.Secret{Name: n, Namespace: Namespace})
	}
	writeJSON(w, http.StatusOK, out)
}
