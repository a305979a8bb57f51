package plan

import (
	"encoding/json"
	"testing"
)

func TestParseLSN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want LSN
		err  bool
	}{
		{in: "0/0", want: 0},
		{in: "16/B374D848", want: 0x16_B374D848},
		{in: "16/b374d848", want: 0x16_B374D848},
		{in: "FFFFFFFF/FFFFFFFF", want: ^LSN(0)},
		{in: "0/3000060", want: 0x3000060},
		{in: "", err: true},
		{in: "16", err: true},
		{in: "/1", err: true},
		{in: "1/", err: true},
		{in: "1/2/3", err: true},
		{in: "100000000/0", err: true},
		{in: "+1/0", err: true},
		{in: "0x1/0", err: true},
		{in: "G/0", err: true},
		{in: " 1/0", err: true},
	} {
		got, err := ParseLSN(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestLSNStringRoundTrip(t *testing.T) {
	for _, l := range []LSN{0, 1, 0x16_B374D848, 0xFFFFFFFF, 1 << 32, ^LSN(0)} {
		s := l.String()
		back, err := ParseLSN(s)
		if err != nil || back != l {
			t.Errorf("%#x: String %q parsed back as %v, %v", uint64(l), s, back, err)
		}
	}
	if got := LSN(0x16_B374D848).String(); got != "16/B374D848" {
		t.Errorf("String = %q, want PostgreSQL's form 16/B374D848", got)
	}
}

func TestLSNJSON(t *testing.T) {
	b, err := json.Marshal(struct{ L LSN }{0x1_00000020})
	if err != nil || string(b) != `{"L":"1/20"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var v struct{ L LSN }
	if err := json.Unmarshal([]byte(`{"L":"A/B"}`), &v); err != nil || v.L != 0xA_0000000B {
		t.Fatalf("Unmarshal = %v, %v", v.L, err)
	}
	if err := json.Unmarshal([]byte(`{"L":"nope"}`), &v); err == nil {
		t.Fatal("Unmarshal accepted a bad LSN")
	}
}
