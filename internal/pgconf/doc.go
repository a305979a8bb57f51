// Package pgconf renders the configuration files of one PostgreSQL instance:
// postgresql.conf, pg_hba.conf and pg_ident.conf.
//
// Rendering is pure: every input is an argument (the Cluster and an
// [Instance] describing where the runtime put things), the output is bytes,
// and nothing here reads or writes files, so the Kubernetes and local
// runtimes produce byte-identical files from the same inputs. [Hash] lets a
// caller compare what it rendered with what it last wrote and reload
// PostgreSQL only when a file changed.
//
// Every piece of text that comes from a manifest is treated as hostile.
// Values are refused when they contain control characters, because a line
// break would let a parameter value or a pg_hba line smuggle in extra
// configuration lines. Parameters are quoted with PostgreSQL's config-file
// rules, and pg_hba lines are parsed and re-rendered from their fields rather
// than copied. The settings and rules pgward depends on for safety are
// placed where PostgreSQL's precedence makes them win: last in
// postgresql.conf (a later line overrides an earlier one) and first in
// pg_hba.conf (the first matching line decides).
package pgconf
