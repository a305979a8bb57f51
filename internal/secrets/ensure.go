package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
)

// EnsureCredentials makes sure the secret called name in store holds
// working credentials for username on dbname, reachable as info describes,
// and returns them. created reports whether a new password was generated,
// in which case the caller must set it on the role.
//
// An existing password is always kept: replacing it would lock out every
// client that already uses it. Only the derived keys (host, port, pgpass,
// URIs) are rewritten, and only if they changed. If the secret belongs to
// another user, EnsureCredentials fails rather than silently repurpose it.
func EnsureCredentials(store Store, name, username, dbname string, info ConnectionInfo, rnd io.Reader) (creds Credentials, created bool, err error) {
	if err := validateUsername(username); err != nil {
		return Credentials{}, false, err
	}
	if err := ValidateIdentifier("dbname", dbname); err != nil {
		return Credentials{}, false, err
	}

	existing, err := store.Get(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		existing = nil
	case err != nil:
		return Credentials{}, false, fmt.Errorf("secrets: read secret %q: %w", name, err)
	}

	var password string
	if existing != nil {
		if u, ok := existing[KeyUsername]; ok && string(u) != username {
			return Credentials{}, false, fmt.Errorf("secrets: secret %q is for user %q, not %q", name, u, username)
		}
		password = string(existing[KeyPassword])
	}
	if password == "" {
		if password, err = GeneratePassword(rnd); err != nil {
			return Credentials{}, false, err
		}
		created = true
	}

	creds = Credentials{Username: username, Password: password, DBName: dbname}
	data, err := ConnectionSecretData(creds, info)
	if err != nil {
		// The message names the field, never the value; say which secret
		// holds the offending password so the user can fix it.
		return Credentials{}, false, fmt.Errorf("secrets: secret %q: %w", name, err)
	}
	if !maps.EqualFunc(existing, data, bytes.Equal) {
		if err := store.Put(name, data); err != nil {
			return Credentials{}, false, fmt.Errorf("secrets: write secret %q: %w", name, err)
		}
	}
	return creds, created, nil
}

// Replacer is a Store that can replace a whole secret at once, so that a
// reader never sees some keys of the old value and some of the new.
type Replacer interface {
	Store
	// Replace swaps the existing secret called name for exactly data.
	Replace(name string, data map[string][]byte) error
}

// RotatePassword gives the existing connection secret called name a new
// password and rewrites every key derived from it (pgpass and the URIs)
// to match, all at once when store is a Replacer. The secret must exist and
// be for username: rotation never creates credentials nobody set on a role.
// The password is validated like any other; errors never carry it.
func RotatePassword(store Store, name, username, dbname, password string, info ConnectionInfo) error {
	existing, err := store.Get(name)
	if err != nil {
		return fmt.Errorf("secrets: read secret %q: %w", name, err)
	}
	if u := string(existing[KeyUsername]); u != username {
		return fmt.Errorf("secrets: secret %q is for user %q, not %q", name, u, username)
	}
	data, err := ConnectionSecretData(Credentials{Username: username, Password: password, DBName: dbname}, info)
	if err != nil {
		return fmt.Errorf("secrets: secret %q: %w", name, err)
	}
	if r, ok := store.(Replacer); ok {
		err = r.Replace(name, data)
	} else {
		err = store.Put(name, data)
	}
	if err != nil {
		return fmt.Errorf("secrets: write secret %q: %w", name, err)
	}
	return nil
}
