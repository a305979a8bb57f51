package secrets

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

var appInfo = ConnectionInfo{
	Endpoints: []Endpoint{{"db-rw.default.svc", 5432}},
	Query:     url.Values{"sslmode": {"verify-full"}},
}

func TestEnsureCredentialsCreatesThenReuses(t *testing.T) {
	store := newMemStore()
	first, created, err := EnsureCredentials(store, "db-app", "app", "app", appInfo, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !created || len(first.Password) != PasswordLength || store.puts != 1 {
		t.Fatalf("created=%v, password length %d, puts %d", created, len(first.Password), store.puts)
	}
	want, err := ConnectionSecretData(first, appInfo)
	if err != nil {
		t.Fatal(err)
	}
	if !equalData(store.secrets["db-app"], want) {
		t.Errorf("stored %q, want %q", store.secrets["db-app"], want)
	}

	second, created, err := EnsureCredentials(store, "db-app", "app", "app", appInfo, failingReader{})
	if err != nil {
		t.Fatal(err)
	}
	if created || second != first {
		t.Errorf("second call: created=%v, credentials changed: %v", created, second != first)
	}
	if store.puts != 1 {
		t.Errorf("an unchanged secret was rewritten (%d puts)", store.puts)
	}
}

func TestEnsureCredentialsRefreshesDerivedKeys(t *testing.T) {
	store := newMemStore()
	first, _, err := EnsureCredentials(store, "db-app", "app", "app", appInfo, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	store.secrets["db-app"]["stale"] = []byte("x")

	moved := appInfo
	moved.Endpoints = []Endpoint{{"db-rw.prod.svc", 6432}}
	second, created, err := EnsureCredentials(store, "db-app", "app", "app", moved, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if created || second.Password != first.Password {
		t.Fatal("the password was regenerated")
	}
	data := store.secrets["db-app"]
	if got := string(data[KeyURI]); !strings.Contains(got, "@db-rw.prod.svc:6432/") {
		t.Errorf("uri not refreshed: %q", got)
	}
	if _, ok := data["stale"]; ok {
		t.Error("a key the secret should not have survived")
	}
}

func TestEnsureCredentialsKeepsUserPassword(t *testing.T) {
	const odd = `my p@ss:w/rd\with%stuff`
	store := newMemStore()
	store.secrets["db-app"] = map[string][]byte{KeyUsername: []byte("app"), KeyPassword: []byte(odd)}

	creds, created, err := EnsureCredentials(store, "db-app", "app", "app", appInfo, failingReader{})
	if err != nil {
		t.Fatal(err)
	}
	if created || creds.Password != odd {
		t.Fatalf("created=%v, password kept: %v", created, creds.Password == odd)
	}
	u, err := url.Parse(string(store.secrets["db-app"][KeyURI]))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := u.User.Password(); got != odd {
		t.Error("uri does not carry the user's password")
	}
	if got := string(store.secrets["db-app"][KeyPgpass]); !strings.HasSuffix(got, `:my p@ss\:w/rd\\with%stuff`+"\n") {
		t.Errorf("pgpass = %q", got)
	}
}

func TestEnsureCredentialsGeneratesMissingPassword(t *testing.T) {
	store := newMemStore()
	store.secrets["db-app"] = map[string][]byte{KeyUsername: []byte("app")}
	creds, created, err := EnsureCredentials(store, "db-app", "app", "app", appInfo, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !created || len(creds.Password) != PasswordLength {
		t.Errorf("created=%v, password length %d", created, len(creds.Password))
	}
}

func TestEnsureCredentialsPgpassAnyPort(t *testing.T) {
	store := newMemStore()
	info := ConnectionInfo{Endpoints: []Endpoint{{"127.0.0.1", 5433}, {"127.0.0.1", 5434}}, PgpassAnyPort: true}
	creds, _, err := EnsureCredentials(store, "local-superuser", "postgres", "postgres", info, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data := store.secrets["local-superuser"]
	if got := string(data[KeyPgpass]); got != "127.0.0.1:*:postgres:postgres:"+creds.Password+"\n" {
		t.Errorf("pgpass = %q", got)
	}
	if got := string(data[KeyPort]); got != "5433" {
		t.Errorf("port = %q", got)
	}
}

func TestEnsureCredentialsErrors(t *testing.T) {
	tests := []struct {
		name     string
		store    func() *memStore
		username string
		dbname   string
		info     ConnectionInfo
		wantIn   []string
	}{
		{
			name: "secret of another user",
			store: func() *memStore {
				s := newMemStore()
				s.secrets["db-app"] = map[string][]byte{KeyUsername: []byte("other"), KeyPassword: []byte(leakCanary)}
				return s
			},
			username: "app", dbname: "app", info: appInfo,
			wantIn: []string{`"other"`, `"app"`, `"db-app"`},
		},
		{
			name: "stored password with a newline",
			store: func() *memStore {
				s := newMemStore()
				s.secrets["db-app"] = map[string][]byte{KeyUsername: []byte("app"), KeyPassword: []byte(leakCanary + "\n")}
				return s
			},
			username: "app", dbname: "app", info: appInfo,
			wantIn: []string{"control character", `"db-app"`},
		},
		{
			name: "store read failure",
			store: func() *memStore {
				s := newMemStore()
				s.getErr = errors.New("permission denied")
				return s
			},
			username: "app", dbname: "app", info: appInfo,
			wantIn: []string{"permission denied"},
		},
		{
			name: "store write failure",
			store: func() *memStore {
				s := newMemStore()
				s.secrets["db-app"] = map[string][]byte{KeyUsername: []byte("app"), KeyPassword: []byte(leakCanary)}
				s.putErr = errors.New("disk full")
				return s
			},
			username: "app", dbname: "app", info: appInfo,
			wantIn: []string{"disk full"},
		},
		{
			name: "bad username", store: newMemStore,
			username: "App", dbname: "app", info: appInfo,
			wantIn: []string{"username"},
		},
		{
			name: "bad dbname", store: newMemStore,
			username: "app", dbname: "app-db", info: appInfo,
			wantIn: []string{"dbname"},
		},
		{
			name: "no port", store: newMemStore,
			username: "app", dbname: "app", info: ConnectionInfo{Endpoints: []Endpoint{{Host: "db"}}},
			wantIn: []string{"port"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := tt.store()
			before := cloneData(store.secrets["db-app"])
			_, _, err := EnsureCredentials(store, "db-app", tt.username, tt.dbname, tt.info, rand.Reader)
			if err == nil {
				t.Fatal("succeeded")
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
			if strings.Contains(err.Error(), leakCanary) {
				t.Errorf("error %q contains the password", err)
			}
			if store.putErr == nil && !equalData(store.secrets["db-app"], before) {
				t.Error("a failed call changed the secret")
			}
		})
	}
}

func TestEnsureCredentialsWithDirStore(t *testing.T) {
	store := DirStore{Root: filepath.Join(t.TempDir(), "secrets")}
	if _, err := store.Get("db-app"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get before creation: %v", err)
	}
	first, created, err := EnsureCredentials(store, "db-app", "app", "app", appInfo, rand.Reader)
	if err != nil || !created {
		t.Fatalf("created=%v, err=%v", created, err)
	}
	second, created, err := EnsureCredentials(store, "db-app", "app", "app", appInfo, rand.Reader)
	if err != nil || created || second.Password != first.Password {
		t.Fatalf("second call: created=%v, err=%v, same password %v", created, err, second.Password == first.Password)
	}
	checkMode(t, filepath.Join(store.Root, "db-app", KeyPassword), 0o600)
}
