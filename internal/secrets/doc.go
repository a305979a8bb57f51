// Package secrets generates and keeps the credentials of a pgward cluster:
// random passwords, the SCRAM-SHA-256 verifiers that let pgward set a role's
// password without sending the plaintext to PostgreSQL, and the connection
// secrets (username, password, pgpass line, URIs) handed to applications.
//
// Nothing here performs I/O except DirStore, the on-disk Store used when
// pgward runs without Kubernetes. Errors never contain a password: they name
// the field at fault instead, because errors end up in logs and events.
package secrets
