package plan

import (
	"reflect"
	"testing"
)

func TestSyncConfigString(t *testing.T) {
	for _, tc := range []struct {
		c    SyncConfig
		want string
	}{
		{SyncConfig{}, ""},
		{SyncConfig{Method: SyncAny, Num: 0, Names: []string{"a"}}, ""},
		{SyncConfig{Method: SyncAny, Num: 1, Names: []string{"c-2", "c-3"}}, `ANY 1 ("c-2","c-3")`},
		{SyncConfig{Method: SyncFirst, Num: 2, Names: []string{"a", "b"}}, `FIRST 2 ("a","b")`},
		{SyncConfig{Num: 1, Names: []string{`we"ird`}}, `ANY 1 ("we""ird")`},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%+v: String = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestParseSyncConfig(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SyncConfig
		err  bool
	}{
		{in: "", want: SyncConfig{}},
		{in: "   ", want: SyncConfig{}},
		{in: `ANY 1 ("c-2","c-3")`, want: SyncConfig{SyncAny, 1, []string{"c-2", "c-3"}}},
		{in: `any 2 (a, b ,c)`, want: SyncConfig{SyncAny, 2, []string{"a", "b", "c"}}},
		{in: `FIRST 1 (s1)`, want: SyncConfig{SyncFirst, 1, []string{"s1"}}},
		{in: `2 (s1, s2, s3)`, want: SyncConfig{SyncFirst, 2, []string{"s1", "s2", "s3"}}},
		{in: `s1, s2`, want: SyncConfig{SyncFirst, 1, []string{"s1", "s2"}}},
		{in: `"we""ird"`, want: SyncConfig{SyncFirst, 1, []string{`we"ird`}}},
		{in: `*`, err: true},
		{in: `ANY 1 (*)`, err: true},
		{in: `ANY (a)`, err: true},
		{in: `ANY 0 (a)`, err: true},
		{in: `ANY 1 (a`, err: true},
		{in: `ANY 1 ()`, err: true},
		{in: `ANY 1 (a,,b)`, err: true},
		{in: `ANY 1 (a,)`, err: true},
		{in: `c-2`, err: true},
		{in: `"unterminated`, err: true},
		{in: `""`, err: true},
	} {
		got, err := ParseSyncConfig(tc.in)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSyncConfig(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestSyncConfigRoundTrip(t *testing.T) {
	for _, c := range []SyncConfig{
		{SyncAny, 1, []string{"c-1"}},
		{SyncAny, 2, []string{"c-1", "c-2", "c-3"}},
		{SyncFirst, 1, []string{"x y", `q"`, "ünï", "$a_1"}},
	} {
		back, err := ParseSyncConfig(c.String())
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Errorf("%q parsed back as %+v, %v", c.String(), back, err)
		}
	}
}
